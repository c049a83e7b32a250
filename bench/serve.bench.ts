// serve.bench.ts — a load test of `grip serve` on the embedded model: the
// server runs in its own process (as in production), this process is the
// load generator: undici (devDependency) with a Pool of one keep-alive
// connection per client, its `request` giving the streamed body chunk by
// chunk, so time to first token is read per request (autocannon reports
// latency of whole responses only, not the first SSE delta). For 1, 8 and 32 concurrent
// clients it sends streamed chat completions, unpruned and with the GRIP
// pruner at keep 0.25 and 0.11, and reports requests/s, p50/p99 latency,
// time to first token and the server's CPU time per request, each against
// the unpruned run of the same client count in the same run; the three
// settings alternate in --rounds rounds (default 4), so a machine whose load
// changes (a shared one) biases none of them. Then the server's RSS before
// and after a soak of --soak requests (default 5000), sampled every 1000. Rows go to
// bench/results/serve.json.
// Usage: node --import tsx bench/serve.bench.ts [--requests N] [--rounds N] [--soak N] [--max-batch N] [--threads N]
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import { makeExamples, renderScene } from '../lib/data/shapes/index.ts';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const arg = (name: string, fallback: number): number => {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? Number(process.argv[at + 1]) : fallback;
};
const requestsPerRun = arg('requests', 400);
const soakRequests = arg('soak', 5000);
const rounds = arg('rounds', 4);
const maxBatch = arg('max-batch', 8);
const threads = arg('threads', cpus().length);
const maxTokens = 16;
const CLIENTS = [1, 8, 32];
const SETTINGS: { name: string; keepRatio: number }[] = [
  { name: 'unpruned', keepRatio: 1 },
  { name: 'grip 0.25', keepRatio: 0.25 },
  { name: 'grip 0.11', keepRatio: 0.11 },
];
const cpu = `${cpus()[0]?.model.trim() ?? 'unknown CPU'}, ${cpus().length} cores`;

// ---- the server ------------------------------------------------------------------------
const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'lib', 'cli.ts'), 'serve', '--port', '0', '--max-batch', String(maxBatch), '--max-queue', '256', '--threads', String(threads), '--backend', 'cpu'], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
const url = await new Promise<string>((resolve, reject) => {
  let out = '';
  child.stdout.on('data', (chunk) => {
    out += chunk;
    const m = / at (http:\/\/\S+) /.exec(out);
    if (m) resolve(m[1]!);
  });
  child.once('exit', (code) => reject(new Error(`grip serve exited with ${code} before listening`)));
});
/** The server's CPU time so far (user + system), from /proc. */
const serverCpuMs = (): number => {
  const fields = readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // clock ticks of 1/100 s (USER_HZ)
};
const rssMiB = (): number => {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
  return Number(m![1]) / 1024;
};

// ---- the requests ----------------------------------------------------------------------
const examples = makeExamples('test', 64, { questionsPerScene: 1 });
const bodies = await Promise.all(examples.map(async (ex) => {
  const url = `data:image/png;base64,${Buffer.from(await renderScene(ex.scene)).toString('base64')}`;
  return (keepRatio: number) => JSON.stringify({
    model: 'shapes-llava-tiny', max_tokens: maxTokens, stream: true, keep_ratio: keepRatio,
    messages: [{ role: 'user', content: [{ type: 'text', text: ex.question }, { type: 'image_url', image_url: { url } }] }],
  });
}));

/** The client connections: one keep-alive connection per concurrent client at most. */
const pool = new Pool(url, { connections: Math.max(...CLIENTS), pipelining: 1 });

/** One streamed request: its latency and time to first token (the first content delta). */
async function once(body: string): Promise<{ latencyMs: number; ttftMs: number }> {
  const t0 = performance.now();
  const response = await pool.request({ path: '/v1/chat/completions', method: 'POST', headers: { 'content-type': 'application/json' }, body });
  if (response.statusCode !== 200) throw new Error(`status ${response.statusCode}: ${await response.body.text()}`);
  let ttftMs = NaN, text = '';
  const decoder = new TextDecoder();
  for await (const chunk of response.body) {
    text += decoder.decode(chunk as Uint8Array, { stream: true });
    if (Number.isNaN(ttftMs) && /"content":"[^"]/.test(text)) ttftMs = performance.now() - t0;
  }
  if (!text.endsWith('data: [DONE]\n\n')) throw new Error(`a stream without [DONE]: ${text.slice(-80)}`);
  const latencyMs = performance.now() - t0;
  return { latencyMs, ttftMs: Number.isNaN(ttftMs) ? latencyMs : ttftMs };
}

/** A GET through the same pool: the server's /metrics text. */
const metricsText = async (): Promise<string> => (await pool.request({ path: '/metrics', method: 'GET' })).body.text();

interface Sample {
  latencies: number[];
  ttfts: number[];
  seconds: number;
  cpuMs: number;
}
const emptySample = (): Sample => ({ latencies: [], ttfts: [], seconds: 0, cpuMs: 0 });

/** `clients` loops sending `total` requests between them, added to `into`. */
async function load(clients: number, total: number, keepRatio: number, into: Sample = emptySample()): Promise<Sample> {
  let next = 0;
  const t0 = performance.now(), cpu0 = serverCpuMs();
  await Promise.all(Array.from({ length: clients }, async () => {
    for (let i = next++; i < total; i = next++) {
      const r = await once(bodies[i % bodies.length]!(keepRatio));
      into.latencies.push(r.latencyMs);
      into.ttfts.push(r.ttftMs);
    }
  }));
  into.seconds += (performance.now() - t0) / 1000;
  into.cpuMs += serverCpuMs() - cpu0;
  return into;
}

function summary(s: Sample) {
  const q = (values: number[], p: number) => {
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
  };
  const n = s.latencies.length;
  return { requests: n, reqPerS: n / s.seconds, p50Ms: q(s.latencies, 0.5), p99Ms: q(s.latencies, 0.99), ttftP50Ms: q(s.ttfts, 0.5), ttftP99Ms: q(s.ttfts, 0.99), serverCpuMsPerRequest: s.cpuMs / n };
}

// ---- the runs --------------------------------------------------------------------------
const load1 = (() => { try { return readFileSync('/proc/loadavg', 'utf8').split(' ')[0]; } catch { return '?'; } })();
console.log(`grip serve load test · ${cpu} (load average ${load1} at the start) · node ${process.version} · server --max-batch ${maxBatch} --threads ${threads} · ${requestsPerRun} streamed requests per setting in ${rounds} alternating rounds, max_tokens ${maxTokens}`);
// Warm-up, every setting: the GRIP pruner loads, the JIT and the heap settle before RSS is read.
for (const setting of SETTINGS) await load(8, 256, setting.keepRatio);
const rssBefore = rssMiB();
const rows: Record<string, unknown>[] = [];
console.log('\n| clients | pruner | req/s | p50 | p99 | TTFT p50 | TTFT p99 | server CPU / req | req/s vs unpruned | CPU / req vs unpruned |');
console.log('|---|---|---|---|---|---|---|---|---|---|');
for (const clients of CLIENTS) {
  const samples = SETTINGS.map(() => emptySample());
  for (let round = 0; round < rounds; round++) {
    for (let s = 0; s < SETTINGS.length; s++) await load(clients, Math.ceil(requestsPerRun / rounds), SETTINGS[s]!.keepRatio, samples[s]);
  }
  const base = summary(samples[0]!);
  SETTINGS.forEach((setting, s) => {
    const r = summary(samples[s]!);
    const row = { clients, pruner: setting.name, keepRatio: setting.keepRatio, ...r, throughputRatio: r.reqPerS / base.reqPerS, cpuRatio: base.serverCpuMsPerRequest / r.serverCpuMsPerRequest };
    rows.push(row);
    console.log(`| ${clients} | ${setting.name} | ${r.reqPerS.toFixed(1)} | ${r.p50Ms.toFixed(1)} ms | ${r.p99Ms.toFixed(1)} ms | ${r.ttftP50Ms.toFixed(1)} ms | ${r.ttftP99Ms.toFixed(1)} ms | ${r.serverCpuMsPerRequest.toFixed(1)} ms | ${row.throughputRatio.toFixed(2)}x | ${row.cpuRatio.toFixed(2)}x |`);
  });
}
// The soak: RSS after `soakRequests` more requests (GRIP 0.25, 8 clients).
// RSS every 1000 requests, with the V8 heap and the host tensors' memory the
// server reports: a leak climbs in one of them steadily, a heap settling flattens.
const memory = async () => {
  const text = await metricsText();
  const mib = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)![1]) / 2 ** 20;
  return { rssMiB: rssMiB(), heapMiB: mib('nodejs_heap_used_bytes'), externalMiB: mib('nodejs_external_memory_bytes') };
};
const trajectory = [await memory()];
for (let done = 0; done < soakRequests; done += 1000) {
  await load(8, Math.min(1000, soakRequests - done), 0.25);
  trajectory.push(await memory());
}
const rssTrajectoryMiB = trajectory.map((m) => m.rssMiB);
const rssAfter = rssMiB();
const soakStart = rssTrajectoryMiB[0]!;
const growth = (rssAfter - soakStart) / soakStart;
const served = rows.reduce((n, r) => n + (r.requests as number), 0) + soakRequests;
console.log(`\nserver RSS ${rssBefore.toFixed(1)} MiB after warm-up, ${soakStart.toFixed(1)} MiB before the soak, ${rssAfter.toFixed(1)} MiB after its ${soakRequests} requests: ${(100 * growth).toFixed(1)}% growth over the soak, ${(100 * (rssAfter - rssBefore) / rssBefore).toFixed(1)}% over all ${served} requests since the warm-up · ${cpu}`);
console.log(`soak every 1000 requests, RSS / V8 heap used / external (MiB): ${trajectory.map((m) => `${m.rssMiB.toFixed(1)} / ${m.heapMiB.toFixed(1)} / ${m.externalMiB.toFixed(1)}`).join(' -> ')}`);

const metrics = await metricsText();
const steps = Number(/grip_batch_size_count (\d+)/.exec(metrics)?.[1]), stepRows = Number(/grip_batch_size_sum (\d+)/.exec(metrics)?.[1]);
console.log(`decode steps ${steps}, ${(stepRows / steps).toFixed(2)} rows per step on average (continuous batching, --max-batch ${maxBatch})`);
await pool.close();
child.kill('SIGTERM');
await new Promise((resolve) => child.once('exit', resolve));

await mkdir(join(here, 'results'), { recursive: true });
await writeFile(join(here, 'results', 'serve.json'), `${JSON.stringify({
  bench: 'serve', cpu, loadAverageAtStart: load1, node: process.version, date: new Date().toISOString(), maxBatch, threads, maxTokens, requestsPerRun, rounds,
  rows, rss: { afterWarmupMiB: rssBefore, beforeSoakMiB: soakStart, afterSoakMiB: rssAfter, soakGrowth: growth, soakRequests, soakTrajectoryMiB: trajectory }, decodeSteps: steps, meanRowsPerStep: stepRows / steps,
}, null, 2)}\n`);
console.log('rows written to bench/results/serve.json');
