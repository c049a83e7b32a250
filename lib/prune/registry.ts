// registry.ts — pruners by name, for the CLI and the evaluation.
import { join } from 'node:path';
import { GripError } from '../errors.js';
import { GripPruner, type ScorerHost } from './grip.js';
import { CDPrunerPruner } from './heuristics/cdpruner.js';
import { DivPrunePruner } from './heuristics/divprune.js';
import { FastVPruner } from './heuristics/fastv.js';
import { NormPruner } from './heuristics/norm.js';
import { PyramidDropPruner } from './heuristics/pyramiddrop.js';
import { RandomPruner } from './heuristics/random.js';
import { UniformPruner } from './heuristics/uniform.js';
import { VisionZipMergePruner, VisionZipPruner } from './heuristics/visionzip.js';
import type { Pruner, PrunePoint } from './pruner.js';

export const PRUNER_NAMES = ['fastv', 'random', 'uniform', 'norm', 'cls', 'visionzip', 'divprune', 'cdpruner', 'pyramiddrop', 'pyramiddrop-final'] as const;
export type PrunerName = (typeof PRUNER_NAMES)[number];

export interface MakePrunerOptions {
  /** Prune at decoder layer K instead of the pruner's default point (fastv: always in-LLM, default K = 2; the others: pre-LLM). */
  layer?: number;
  /** random: the seed. */
  seed?: number;
  /** cls, visionzip: VisionZip's contextual share of the budget (a fraction in [0, 1) or a count; cls 0, visionzip 10/64 by default). */
  contextual?: number;
  /** cdpruner: the relevance weight theta in [0, 1] (default 0.5). */
  theta?: number;
}

/**
 * A pruner by name; layer K puts it in the LLM (fastv is always in-LLM,
 * default K = 2). pyramiddrop prunes in stages at layers 1, 2, 3 (its
 * constructor takes others), matched to a prune at layer 2 in LLM cost
 * ('pyramiddrop') or in the tokens its last stage keeps ('pyramiddrop-final').
 */
export function makePruner(name: string, options: MakePrunerOptions = {}): Pruner {
  const point: { point?: PrunePoint } = options.layer === undefined ? {} : { point: { layer: options.layer } };
  if (name.startsWith('pyramiddrop') && options.layer !== undefined) {
    throw new GripError('ERR_GRIP_RANGE', `expected no layer for pruner "${name}" (it prunes at its stage layers) but received layer ${options.layer}`);
  }
  switch (name) {
    case 'pyramiddrop': return new PyramidDropPruner();
    case 'pyramiddrop-final': return new PyramidDropPruner({ match: 'final' });
    case 'fastv': return new FastVPruner(options.layer === undefined ? {} : { layer: options.layer });
    case 'random': return new RandomPruner({ ...point, ...(options.seed === undefined ? {} : { seed: options.seed }) });
    case 'uniform': return new UniformPruner(point);
    case 'norm': return new NormPruner(point);
    case 'cls': return new VisionZipPruner({ ...point, ...(options.contextual === undefined ? {} : { contextual: options.contextual }) });
    case 'visionzip': return new VisionZipMergePruner({ ...point, ...(options.contextual === undefined ? {} : { contextual: options.contextual }) });
    case 'divprune': return new DivPrunePruner(point);
    case 'cdpruner': return new CDPrunerPruner({ ...point, ...(options.theta === undefined ? {} : { theta: options.theta }) });
    default: throw new GripError('ERR_GRIP_RANGE', `expected one of ${PRUNER_NAMES.join(', ')} for pruner but received "${name}"`);
  }
}

/**
 * The pruners of a comma-separated list (`grip eval --pruners`, the tools):
 * a heuristic by name or spec (NAME:key=value:..., see heuristicFromSpec); 'grip' and 'warmup' the GRIP pruner in `gripDir` and
 * its warm-up policy in `gripDir/warmup`; NAME=DIR the GRIP pruner in DIR,
 * named NAME (ablations). Each GRIP pruner is checked against `model`.
 */
export async function prunersFromList(list: string, gripDir: string, model: ScorerHost): Promise<Pruner[]> {
  const pruners: Pruner[] = [];
  for (const spec of list.split(',')) {
    // NAME:key=value is a heuristic with settings; NAME=DIR a GRIP pruner in DIR.
    const isSpec = spec.includes(':') && spec.indexOf(':') < (spec.includes('=') ? spec.indexOf('=') : Infinity);
    const [name, dir] = spec.includes('=') && !isSpec ? (spec.split('=', 2) as [string, string]) : [spec, undefined];
    if (dir === undefined && name !== 'grip' && name !== 'warmup') {
      pruners.push(heuristicFromSpec(name));
      continue;
    }
    const loaded = await GripPruner.load(dir ?? (name === 'grip' ? gripDir : join(gripDir, 'warmup')));
    loaded.checkModel(model);
    pruners.push({ name, point: loaded.point, needs: loaded.needs, select: (ctx) => loaded.select(ctx) });
  }
  return pruners;
}

const SPEC_KEYS = ['layer', 'seed', 'contextual', 'theta'] as const;

/**
 * A heuristic from a spec `NAME[:key=value]...` with keys layer, seed,
 * contextual, theta (the MakePrunerOptions), e.g. `cdpruner:theta=0.25` or
 * `norm:layer=2`: the settings a validation sweep compares. The pruner is
 * named by its spec, so two settings of one heuristic are two rows.
 */
export function heuristicFromSpec(spec: string): Pruner {
  const [name, ...settings] = spec.split(':');
  const options: MakePrunerOptions = {};
  for (const setting of settings) {
    const match = /^([a-z]+)=(-?[0-9.]+(?:e-?[0-9]+)?)$/.exec(setting);
    const key = match?.[1] as (typeof SPEC_KEYS)[number] | undefined;
    if (!match || !SPEC_KEYS.includes(key!) || !Number.isFinite(Number(match[2]))) {
      throw new GripError('ERR_GRIP_RANGE', `expected key=number with key one of ${SPEC_KEYS.join(', ')} in pruner "${spec}" but received "${setting}"`);
    }
    options[key!] = Number(match[2]);
  }
  const pruner = makePruner(name!, options);
  if (settings.length === 0) return pruner;
  return { name: spec, point: pruner.point, ...(pruner.needs ? { needs: pruner.needs } : {}), select: (ctx) => pruner.select(ctx) };
}

/** The heuristic's name without its settings: `cdpruner:theta=0.25` -> `cdpruner`. */
export function heuristicBase(spec: string): string {
  return spec.split(':')[0]!;
}
