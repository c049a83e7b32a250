// registry.ts — pruners by name, for the CLI and the evaluation.
import { GripError } from '../errors.js';
import { FastVPruner } from './heuristics/fastv.js';
import { RandomPruner } from './heuristics/random.js';
import type { Pruner } from './pruner.js';

export const PRUNER_NAMES = ['fastv', 'random'] as const;
export type PrunerName = (typeof PRUNER_NAMES)[number];

/** A pruner by name; layer K puts it in the LLM (fastv is always in-LLM, default K = 2). */
export function makePruner(name: string, options: { layer?: number; seed?: number } = {}): Pruner {
  if (name === 'fastv') return new FastVPruner(options.layer === undefined ? {} : { layer: options.layer });
  if (name === 'random') {
    return new RandomPruner({ ...(options.layer === undefined ? {} : { point: { layer: options.layer } }), ...(options.seed === undefined ? {} : { seed: options.seed }) });
  }
  throw new GripError('ERR_GRIP_RANGE', `expected one of ${PRUNER_NAMES.join(', ')} for pruner but received "${name}"`);
}
