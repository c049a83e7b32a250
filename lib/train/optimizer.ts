// optimizer.ts — AdamW over the scorer's parameters (the native adamw op per
// tensor), with its moments kept so a checkpoint can resume exactly.
import { ops, SCORER_PARAM_NAMES, type ScorerParams } from '../ops.js';
import { Tensor } from '../tensor.js';

export interface AdamWSettings {
  lr: number;
  weightDecay: number;
  beta1?: number;
  beta2?: number;
  /** Clip the global gradient norm to this (default: no clipping). */
  maxGradNorm?: number;
}

/** What of an optimizer a checkpoint keeps: its step count and moments (run.ts writes them to optimizer.safetensors). */
export interface OptimizerMoments {
  step: number;
  readonly m: Record<string, Tensor>;
  readonly v: Record<string, Tensor>;
}

export class ScorerOptimizer implements OptimizerMoments {
  step = 0;
  readonly m: Record<string, Tensor> = {};
  readonly v: Record<string, Tensor> = {};

  constructor(params: ScorerParams, readonly settings: AdamWSettings) {
    for (const name of SCORER_PARAM_NAMES) {
      this.m[name] = new Tensor('f32', params[name].shape, new Float32Array(params[name].size), 'cpu');
      this.v[name] = new Tensor('f32', params[name].shape, new Float32Array(params[name].size), 'cpu');
    }
  }

  /** Takes over `saved`'s step count and moments (copied), so the next step is the one the saved optimizer would take. */
  restore(saved: OptimizerMoments): void {
    for (const name of SCORER_PARAM_NAMES) {
      (this.m[name]!.host as Float32Array).set(saved.m[name]!.toHost().host as Float32Array);
      (this.v[name]!.host as Float32Array).set(saved.v[name]!.toHost().host as Float32Array);
    }
    this.step = saved.step;
  }

  /** One step with gradients `grads` (modified: scaled when clipped); returns the gradient norm before clipping. */
  async apply(params: ScorerParams, grads: ScorerParams, lr = this.settings.lr): Promise<number> {
    let sq = 0;
    for (const name of SCORER_PARAM_NAMES) for (const g of grads[name].host as Float32Array) sq += g * g;
    const norm = Math.sqrt(sq);
    const max = this.settings.maxGradNorm;
    if (max !== undefined && norm > max) {
      const scale = max / norm;
      for (const name of SCORER_PARAM_NAMES) (grads[name].host as Float32Array).forEach((g, i, a) => { a[i] = g * scale; });
    }
    this.step++;
    for (const name of SCORER_PARAM_NAMES) {
      await ops.adamw(params[name], grads[name], this.m[name]!, this.v[name]!, {
        step: this.step, lr, weightDecay: this.settings.weightDecay,
        ...(this.settings.beta1 !== undefined ? { beta1: this.settings.beta1 } : {}),
        ...(this.settings.beta2 !== undefined ? { beta2: this.settings.beta2 } : {}),
      }, { backend: 'cpu' });
    }
    return norm;
  }
}

/** Adds b into a, tensor by tensor (gradient accumulation). */
export function accumulate(into: ScorerParams, add: ScorerParams): void {
  for (const name of SCORER_PARAM_NAMES) {
    const a = into[name].host as Float32Array, b = add[name].host as Float32Array;
    for (let i = 0; i < a.length; i++) a[i] = a[i]! + b[i]!;
  }
}
