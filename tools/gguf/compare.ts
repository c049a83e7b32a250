// compare.ts — how the yardstick decides that two runtimes compute the same
// function: logits compared after centring each row (llama.cpp hands out
// log-probabilities, which differ from logits by one constant per row), and
// argmax compared away from near-ties.

/** ||c(a) - c(b)|| / ||c(a)|| per row, c = minus the row mean: logits and log-probabilities differ by a constant per row. */
export function centeredRelErr(a: Float32Array, b: Float32Array, rowSize: number): number {
  let worst = 0;
  for (let at = 0; at < a.length; at += rowSize) {
    let ma = 0, mb = 0;
    for (let i = 0; i < rowSize; i++) { ma += a[at + i]!; mb += b[at + i]!; }
    ma /= rowSize; mb /= rowSize;
    let num = 0, den = 0;
    for (let i = 0; i < rowSize; i++) {
      const x = a[at + i]! - ma;
      num += (x - (b[at + i]! - mb)) ** 2;
      den += x * x;
    }
    worst = Math.max(worst, Math.sqrt(num / den));
  }
  return worst;
}

/**
 * Rows where our top-2 margin is under 4x the rms of the (centred) gap between
 * the two runtimes in that row: there the other rounding may flip the argmax.
 */
export function nearTies(ours: Float32Array, theirs: Float32Array, rowSize: number): boolean[] {
  const out: boolean[] = [];
  for (let at = 0; at < ours.length; at += rowSize) {
    const a = ours.subarray(at, at + rowSize), b = theirs.subarray(at, at + rowSize);
    const ma = a.reduce((s, v) => s + v, 0) / rowSize, mb = b.reduce((s, v) => s + v, 0) / rowSize;
    const gapRms = Math.sqrt(a.reduce((s, v, i) => s + (v - ma - (b[i]! - mb)) ** 2, 0) / rowSize);
    const [first, second] = [...a].sort((x, y) => y - x);
    out.push(first! - second! < 4 * gapRms);
  }
  return out;
}

export function argmaxRows(values: Float32Array, rowSize: number): number[] {
  const out: number[] = [];
  for (let at = 0; at < values.length; at += rowSize) {
    let best = 0;
    for (let i = 1; i < rowSize; i++) if (values[at + i]! > values[at + best]!) best = i;
    out.push(best);
  }
  return out;
}
