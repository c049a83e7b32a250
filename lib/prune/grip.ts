// grip.ts — the GRIP pruner (GRIP-VLM, arXiv 2605.13375): a budget-aware
// scorer gives every visual token a logit conditioned on the question and on
// the keep ratio ρ (the fused scoreTokens op: LayerNorm, MLP, FiLM on
// Fourier features of ρ, a low-rank query term), so one scorer serves every
// budget. Inference keeps the top k = ceil(ρN); training samples keep-sets
// from the Plackett-Luce policy softmax(scores) with Gumbel-top-k. With a
// redundancy penalty λ > 0 (settings.redundancy), both pick token by token
// and each pick pays λ times its largest cosine to the tokens kept before it
// (sequential.ts).
// On disk: pruner.safetensors (the scorer's parameters) + grip.json (settings).
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { ResolvedBackend } from '../backend.js';
import { GripError } from '../errors.js';
import { writeFileAtomic } from '../files.js';
import { JsonFields, readJsonFile } from '../json.js';
import { SafetensorsFile, writeSafetensors } from '../model/safetensors.js';
import { ops, SCORER_PARAM_NAMES, scorerShapes, type ScorerParamName, type ScorerParams } from '../ops.js';
import { numel, Tensor, tensor } from '../tensor.js';
import { mulberry32 } from '../random.js';
import { budgetRangeOf } from '../train/data.js';
import { TRAIN_DEFAULTS } from '../train/defaults.js';
import { check } from '../validate.js';
import { contextShape, topkRows } from './common.js';
import { greedyKeep } from './sequential.js';
import { cosineSimilarities } from './similarity.js';
import { pruneLayer, QUERY_POOLINGS, type PruneContext, type Pruner, type PrunePoint, type QueryPooling } from './pruner.js';

export const GRIP_FORMAT = 'grip-vlm/pruner@1';

export interface GripSettings {
  format: typeof GRIP_FORMAT;
  point: PrunePoint;
  /** Width of the token states it scores (the LLM hidden size). */
  dim: number;
  /** Scorer MLP width H and query rank R. */
  hidden: number;
  rank: number;
  /** Keep ratios it was trained for, [low, high]. */
  budgetRange: [number, number];
  /** How the runtime builds the query from the text after the image at the point (QUERY_POOLINGS). */
  queryPooling: QueryPooling;
  /** λ >= 0 of the redundancy penalty (sequential.ts); 0, or absent in older files: independent scores, top-k. */
  redundancy?: number;
  /** The model it was trained for (name of its directory, sizes), to refuse a mismatched one. */
  model: { name: string; hiddenSize: number; numImageTokens: number; numLayers: number };
  /** Training metadata (steps, rewards, seeds, ...). */
  training: Record<string, unknown>;
}

/** The minimal view of a VLM that init needs (avoids an import cycle with the runtime). */
export interface ScorerHost {
  readonly dir: string;
  readonly numImageTokens: number;
  readonly config: { text: { hiddenSize: number; numLayers: number } };
}

/** Every option left out takes the shipped recipe's value (TRAIN_DEFAULTS, train/defaults.ts). */
export interface GripInitOptions {
  point?: PrunePoint;
  hidden?: number;
  rank?: number;
  seed?: number;
  /** Default: the range of TRAIN_DEFAULTS.budgets. */
  budgetRange?: [number, number];
  queryPooling?: QueryPooling;
  /** λ of the redundancy penalty (0: top-k of independent scores). */
  redundancy?: number;
}

export class GripPruner implements Pruner {
  readonly name = 'grip';
  readonly point: PrunePoint;
  readonly needs: { query: QueryPooling };
  params: ScorerParams;
  settings: GripSettings;

  constructor(params: ScorerParams, settings: GripSettings) {
    this.params = params;
    this.settings = settings;
    this.point = settings.point;
    this.needs = { query: settings.queryPooling };
  }

  /** A fresh scorer for `model` with seeded random weights. */
  static init(model: ScorerHost, options: GripInitOptions = {}): GripPruner {
    const d = TRAIN_DEFAULTS;
    const point = options.point ?? (d.point === 'pre-llm' ? d.point : { ...d.point });
    pruneLayer(point, model.config.text.numLayers, 'options.point');
    const H = options.hidden ?? d.hidden, R = options.rank ?? d.rank, seed = options.seed ?? d.seed;
    check.integer(H, 'options.hidden', 1, 4096);
    check.integer(R, 'options.rank', 1, 4096);
    check.integer(seed, 'options.seed', 0, 0xffffffff);
    const budgetRange = options.budgetRange ?? budgetRangeOf(d.budgets);
    checkRange(budgetRange, 'options.budgetRange');
    const queryPooling = options.queryPooling ?? d.queryPooling;
    check.oneOf(queryPooling, 'options.queryPooling', QUERY_POOLINGS);
    const redundancy = options.redundancy ?? d.redundancy;
    check.number(redundancy, 'options.redundancy', isRedundancy, 'a finite number >= 0');
    const D = model.config.text.hiddenSize;
    const normal = gaussian(seed);
    const randn = (n: number, std: number) => Float32Array.from({ length: n }, () => normal() * std);
    const shapes = scorerShapes(D, H, R);
    const make = (name: ScorerParamName, values: (size: number) => Float32Array) => tensor(values(numel(shapes[name].shape)), shapes[name].shape);
    const zero = (size: number) => new Float32Array(size);
    const random = (std: number) => (size: number) => randn(size, std);
    // Drawn in source order (w1, filmW, w2, wq, wk), so a seed always gives the same scorer.
    const params: ScorerParams = {
      lnWeight: make('lnWeight', (size) => new Float32Array(size).fill(1)),
      lnBias: make('lnBias', zero),
      w1: make('w1', random(1 / Math.sqrt(D))),
      b1: make('b1', zero),
      // FiLM starts near the identity (γ = β = 0): ρ is learnt, not assumed.
      filmW: make('filmW', random(0.01)),
      filmB: make('filmB', zero),
      w2: make('w2', random(1 / Math.sqrt(H))),
      b2: make('b2', zero),
      wq: make('wq', random(1 / Math.sqrt(D))),
      wk: make('wk', random(1 / Math.sqrt(D))),
    };
    return new GripPruner(params, {
      format: GRIP_FORMAT, point, dim: D, hidden: H, rank: R, budgetRange, queryPooling, redundancy,
      model: { name: baseName(model.dir), hiddenSize: D, numImageTokens: model.numImageTokens, numLayers: model.config.text.numLayers },
      training: { initSeed: seed },
    });
  }

  /** Reads pruner.safetensors + grip.json from `dir`. */
  static async load(dir: string): Promise<GripPruner> {
    const settingsPath = join(dir, 'grip.json');
    const settings = parseGripSettings(await readJsonFile(settingsPath, 'grip.json'), settingsPath);
    const file = await SafetensorsFile.open(join(dir, 'pruner.safetensors'));
    try {
      const shapes = scorerShapes(settings.dim, settings.hidden, settings.rank);
      const params = {} as Record<string, Tensor>;
      for (const name of SCORER_PARAM_NAMES) {
        if (!file.has(name)) throw new GripError('ERR_GRIP_FORMAT', `expected tensor "${name}" in ${file.path} but received none`);
        const t = await file.read(name);
        const want = shapes[name].shape;
        if (t.dtype !== 'f32' || t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i])) {
          throw new GripError('ERR_GRIP_FORMAT', `expected f32 [${want.join(', ')}] for tensor "${name}" in ${file.path} but received ${t.dtype} [${t.shape.join(', ')}]`);
        }
        params[name] = t;
      }
      return new GripPruner(params as unknown as ScorerParams, settings);
    } finally {
      await file.close();
    }
  }

  /** Writes pruner.safetensors and grip.json into `dir` (each atomically and durably: temp file, fsync, rename). */
  async save(dir: string): Promise<void> {
    await mkdir(dir, { recursive: true });
    const tensors: Record<string, Tensor> = {};
    for (const name of SCORER_PARAM_NAMES) tensors[name] = this.params[name].toHost();
    await writeSafetensors(join(dir, 'pruner.safetensors'), tensors, { format: GRIP_FORMAT });
    await writeFileAtomic(join(dir, 'grip.json'), `${JSON.stringify(this.settings, null, 2)}\n`);
  }

  /** A deep copy (for a frozen reference policy). */
  clone(): GripPruner {
    const params = {} as Record<string, Tensor>;
    for (const name of SCORER_PARAM_NAMES) {
      const t = this.params[name].toHost();
      params[name] = new Tensor('f32', t.shape, Float32Array.from(t.host as Float32Array), 'cpu');
    }
    return new GripPruner(params as unknown as ScorerParams, structuredClone(this.settings));
  }

  /** Refuses a model other than the one the scorer was made for (sizes must match). */
  checkModel(model: ScorerHost): void {
    const m = this.settings.model;
    if (m.hiddenSize !== model.config.text.hiddenSize || m.numImageTokens !== model.numImageTokens || m.numLayers !== model.config.text.numLayers) {
      throw new GripError('ERR_GRIP_SHAPE', `expected a model with hidden ${m.hiddenSize}, ${m.numImageTokens} image tokens and ${m.numLayers} layers (the pruner was trained for ${m.name}) for the pruner's model but received hidden ${model.config.text.hiddenSize}, ${model.numImageTokens} image tokens and ${model.config.text.numLayers} layers`);
    }
  }

  /** scores [B, N] of the visual states. */
  async scores(visual: Tensor, query: Tensor, keepRatio: ArrayLike<number> | number, backend: ResolvedBackend, signal?: AbortSignal): Promise<Tensor> {
    return ops.scoreTokens(visual, query, keepRatio, this.params, { backend, ...(signal ? { signal } : {}) });
  }

  /** λ of the redundancy penalty (0 for files from before it existed). */
  get redundancy(): number {
    return this.settings.redundancy ?? 0;
  }

  async select(ctx: PruneContext): Promise<Int32Array[]> {
    contextShape(ctx, this.name);
    const scores = await this.scores(ctx.visual, ctx.query, ctx.keepRatio, ctx.backend, ctx.signal);
    if (this.redundancy > 0) {
      const host = scores.toHost().host as Float32Array;
      const N = scores.shape[1]!;
      const similarities = await cosineSimilarities(ctx.visual, ctx.backend, ctx.signal);
      return similarities.map((similarity, b) => greedyKeep({ scores: host.subarray(b * N, (b + 1) * N), similarity, redundancy: this.redundancy }, ctx.numKeep[b]!).sort());
    }
    return topkRows(scores, scores.shape[0]!, scores.shape[1]!, ctx);
  }
}

const RANGE_TEXT = '[low, high] with 0 < low <= high <= 1';
// Numbers checked first: comparing a nested array would coerce it to a string (a
// grip.json nesting one 5000 deep overflowed the stack: a parser-fuzzer finding).
const isRange = (range: unknown): range is [number, number] =>
  Array.isArray(range) && range.length === 2 && typeof range[0] === 'number' && typeof range[1] === 'number' &&
  range[0] > 0 && range[0] <= range[1] && range[1] <= 1;

function checkRange(range: unknown, what: string): asserts range is [number, number] {
  if (!isRange(range)) check.fail('ERR_GRIP_RANGE', RANGE_TEXT, what, JSON.stringify(range));
}

/**
 * The settings of a grip.json (`where` its path), every field checked: a
 * fault is ERR_GRIP_FORMAT naming the field ("expected hidden an integer in
 * [1, 4096] for PATH but received 0"). Fields it does not know are kept.
 */
export function parseGripSettings(json: Record<string, unknown>, where: string): GripSettings {
  const fields = new JsonFields(json, where);
  fields.literal('format', GRIP_FORMAT);
  const model = fields.object('model');
  model.string('name');
  const hiddenSize = model.integer('hiddenSize', 1);
  model.integer('numImageTokens', 1);
  const numLayers = model.integer('numLayers', 1);
  const point = json.point;
  if (point !== 'pre-llm') {
    const layer = typeof point === 'object' && point !== null ? (point as { layer?: unknown }).layer : undefined;
    if (typeof layer !== 'number' || !Number.isInteger(layer) || layer < 1 || layer >= numLayers || Object.keys(point as object).length !== 1) {
      fields.fail('point', `"pre-llm" or {"layer": K} with K in [1, ${numLayers - 1}]`, point);
    }
  }
  fields.number('dim', (dim) => dim === hiddenSize, `equal to model.hiddenSize (${hiddenSize})`);
  fields.integer('hidden', 1, 4096);
  fields.integer('rank', 1, 4096);
  if (!isRange(json.budgetRange)) fields.fail('budgetRange', RANGE_TEXT, json.budgetRange);
  fields.oneOf('queryPooling', QUERY_POOLINGS);
  if (fields.has('redundancy')) fields.number('redundancy', isRedundancy, 'a finite number >= 0');
  fields.object('training');
  return json as unknown as GripSettings;
}

function isRedundancy(value: unknown): value is number {
  return typeof value === 'number' && value >= 0 && Number.isFinite(value);
}

function baseName(dir: string): string {
  return dir.replace(/[\\/]+$/, '').split(/[\\/]/).pop() ?? dir;
}

/** Seeded standard normal samples (mulberry32 + Box-Muller). */
export function gaussian(seed: number): () => number {
  const uniform = mulberry32(seed);
  // 1 - u is in (0, 1]: the log is finite.
  return () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
}
