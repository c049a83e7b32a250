// similarity.ts — cosine similarities between the visual tokens of each row,
// for the pruners that look at redundancy (DivPrune's max-min diversity,
// GRIP's redundancy penalty). Native: rmsNorm with unit weight scales each
// row to length sqrt(D), one matmul per batch row gives D · cos, and the
// host divides by D.
import type { ResolvedBackend } from '../backend.js';
import { gatherRagged, view } from '../moves.js';
import { ops } from '../ops.js';
import { tensor, type Tensor } from '../tensor.js';
import { check } from '../validate.js';

/** Keeps 0/0 out of the normalisation of a zero row, far below any real mean square. */
const NORM_EPS = 1e-30;

/**
 * cos(h_i, h_j) of visual [B, N, D] f32 (host or device), as B row-major
 * [N, N] host arrays. A zero state has cosine 0 with everything.
 */
export async function cosineSimilarities(visual: Tensor, backend: ResolvedBackend, signal?: AbortSignal): Promise<Float32Array[]> {
  check.tensor(visual, 'visual', '[B,N,D]', ['f32']);
  check.oneOf(backend, 'backend', ['cpu', 'emu', 'cuda']);
  check.signal(signal, 'signal');
  const [B, N, D] = visual.shape as [number, number, number];
  const onDevice = visual.device === 'cuda';
  const o = { backend: onDevice ? ('cuda' as const) : backend === 'emu' ? ('emu' as const) : ('cpu' as const), ...(signal ? { signal } : {}) };
  const ones = tensor(new Float32Array(D).fill(1), [D]);
  const weight = onDevice ? ones.toDevice() : ones;
  const unit = await ops.rmsNorm(view(visual, [B * N, D]), weight, NORM_EPS, o);
  weight.dispose();
  const out: Float32Array[] = [];
  try {
    for (let b = 0; b < B; b++) {
      const rows = await rowOf(unit, b, B, N, D, o.backend);
      const similarity = await ops.matmul(rows, rows, { ...o, transB: true });
      if (rows !== unit) rows.dispose();
      const host = similarity.toHost().host as Float32Array;
      similarity.dispose();
      for (let i = 0; i < host.length; i++) host[i] = host[i]! / D;
      out.push(host);
    }
  } finally {
    unit.dispose();
  }
  return out;
}

/** Rows [b·N, (b+1)·N) of unit [B·N, D] as [N, D]: a view on the host, a gather on the device. */
async function rowOf(unit: Tensor, b: number, B: number, N: number, D: number, backend: 'cpu' | 'emu' | 'cuda'): Promise<Tensor> {
  if (B === 1) return unit;
  if (unit.device !== 'cuda') return tensor((unit.host as Float32Array).subarray(b * N * D, (b + 1) * N * D), [N, D]);
  const rows = await gatherRagged(ops, view(unit, [1, B * N, D]), [Int32Array.from({ length: N }, (_, i) => b * N + i)], backend);
  return view(rows, [N, D]);
}
