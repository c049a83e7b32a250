// cli.test.ts — `grip run` end to end on the test checkpoint: an image file
// in, an answer and the kept tokens out; bad arguments give one clear line.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const model = join(root, 'test', 'fixtures', 'tiny-llava');
const work = mkdtempSync(join(tmpdir(), 'grip-cli-'));
const image = join(work, 'shapes.png');

const env = { ...process.env };
delete env.FORCE_COLOR; // with NO_COLOR set too, Node would print a warning into stderr

function grip(...args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', join(root, 'lib', 'cli.ts'), ...args], { encoding: 'utf8', cwd: root, env });
}

test.before(async () => {
  await sharp({ create: { width: 48, height: 40, channels: 3, background: { r: 200, g: 30, b: 30 } } }).png().toFile(image);
});
test.after(() => rmSync(work, { recursive: true, force: true }));

test('grip run answers with fastv at keep 0.25 and reports the kept tokens', () => {
  const r = grip('run', '--model', model, '--image', image, '--prompt', 'what is the color of the shape?', '--keep', '0.25', '--pruner', 'fastv', '--max-new-tokens', '4', '--json');
  assert.is(r.status, 0, r.stderr);
  const result = JSON.parse(r.stdout) as { tokenIds: number[]; kept: { indices: number[]; keepRatio: number }; timings: Record<string, number> };
  assert.is(result.kept.indices.length, 16);
  assert.is(result.kept.keepRatio, 0.25);
  assert.ok(result.tokenIds.length >= 1 && result.tokenIds.length <= 4);
  for (const key of ['preprocessMs', 'visionMs', 'pruneMs', 'prefillMs', 'decodeMs']) assert.type(result.timings[key], 'number');
});

test('grip run prints the answer, then timings on stderr', () => {
  const r = grip('run', '--model', model, '--image', image, '--prompt', 'what is the color?', '--max-new-tokens', '2');
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stderr, /kept 64\/64 visual tokens/);
  assert.match(r.stderr, /prefill \d+(\.\d+)? ms/);
});

test('grip run without --model runs the embedded model; --pruner grip its GRIP pruner; --stream prints the same answer', () => {
  const plain = grip('run', '--image', image, '--prompt', 'what is the color of the shape?', '--keep', '0.25', '--max-new-tokens', '3');
  assert.is(plain.status, 0, plain.stderr);
  assert.match(plain.stderr, /pruner grip, kept \d+\/\d+ visual tokens/);
  const named = grip('run', '--image', image, '--prompt', 'what is the color of the shape?', '--keep', '0.25', '--pruner', 'grip', '--max-new-tokens', '3');
  assert.is(named.status, 0, named.stderr);
  assert.is(named.stdout, plain.stdout);
  const streamed = grip('run', '--image', image, '--prompt', 'what is the color of the shape?', '--keep', '0.25', '--pruner', 'grip', '--max-new-tokens', '3', '--stream');
  assert.is(streamed.status, 0, streamed.stderr);
  assert.is(streamed.stdout.trim(), plain.stdout.trim());
  const missing = grip('run', '--image', image);
  assert.is(missing.stderr.trim(), 'grip: expected --prompt for grip run but received nothing (ERR_GRIP_RANGE)');
  const both = grip('run', '--image', image, '--prompt', 'hi', '--json', '--stream');
  assert.is(both.stderr.trim(), 'grip: expected --json or --stream for grip run but received both (ERR_GRIP_RANGE)');
  const mixed = grip('run', '--image', image, '--prompt', 'hi', '--pruner', 'fastv', '--grip', work);
  assert.is(mixed.stderr.trim(), 'grip: expected --pruner grip (or no --pruner) with --grip but received --pruner fastv (ERR_GRIP_RANGE)');
});

test('grip run with a missing image file reports ERR_GRIP_IO', () => {
  const r = grip('run', '--model', model, '--image', join(work, 'nope.png'), '--prompt', 'hi');
  assert.is(r.status, 1);
  assert.match(r.stderr, /ERR_GRIP_IO/);
  assert.match(r.stderr, /nope\.png/);
});

test('grip with an unknown command or pruner says what it expected', () => {
  const a = grip('fly');
  assert.is(a.status, 1);
  assert.is(a.stderr.trim(), 'grip: expected a command (run, serve, demo, train, eval, help) for grip but received "fly" (ERR_GRIP_RANGE)');
  const b = grip('run', '--model', model, '--image', image, '--prompt', 'hi', '--pruner', 'magic', '--keep', '0.5');
  assert.is(b.status, 1);
  assert.is(b.stderr.trim(), 'grip: expected one of grip, fastv, random, uniform, norm, cls, visionzip, divprune, cdpruner, pyramiddrop, pyramiddrop-final for --pruner but received "magic" (ERR_GRIP_RANGE)');
});

test('grip train names a bad --teacher, --reward, --query, --warmup-loss, --teacher-temperature or --redundancy before loading anything', () => {
  const cases: Array<[string, string]> = [
    ['--teacher=oracle', 'expected one of last-token, text-tokens, cls for --teacher but received "oracle"'],
    ['--reward=vibes', 'expected loglik, match or fidelity for --reward but received "vibes"'],
    ['--query=first-token', 'expected one of mean-text-after-image, last-token for --query but received "first-token"'],
    ['--warmup-loss=hinge', 'expected one of listwise, pairwise for --warmup-loss but received "hinge"'],
    ...['0', '-1', 'hot', 'Infinity'].map((t): [string, string] => [`--teacher-temperature=${t}`, `expected a finite number > 0 for --teacher-temperature but received "${t}"`]),
    ...['-0.5', 'lots', 'Infinity', ''].map((l): [string, string] => [`--redundancy=${l}`, `expected a finite number >= 0 for --redundancy but received "${l}"`]),
  ];
  for (const [flag, message] of cases) {
    const r = grip('train', '--out', join(work, 'never'), flag);
    assert.is(r.status, 1, flag);
    assert.is(r.stderr.trim(), `grip: ${message} (ERR_GRIP_RANGE)`);
  }
  assert.not.ok(existsSync(join(work, 'never')), 'a rejected grip train created its --out folder');
});

test('grip help prints the usage', () => {
  const r = grip('help');
  assert.is(r.status, 0);
  assert.match(r.stdout, /usage: grip <command>/);
});

test.run();
