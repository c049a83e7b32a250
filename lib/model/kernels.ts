// kernels.ts — the ops as the runtime awaits them. Async mode runs each op
// off the event loop (ops.x: one thread hop per call, ~15 µs); sync mode
// runs it on the calling thread (ops.xSync) and yields to the event loop
// between layers instead — for small models, whose ops take less time than
// the hop, while no single stretch holds the loop for long.
import { ops } from '../ops.js';

type OpSet = typeof ops;
type AsyncName = { [K in keyof OpSet]: K extends `${string}Sync` ? never : K }[keyof OpSet];
export type Kernels = Pick<OpSet, AsyncName> & {
  readonly mode: 'async' | 'sync';
  /** A point where the event loop may run (a macrotask turn in sync mode). */
  yield(): Promise<void>;
};

const asyncKernels: Kernels = { ...ops, mode: 'async', yield: () => Promise.resolve() };

const syncKernels: Kernels = (() => {
  const table: Record<string, unknown> = { mode: 'sync', yield: () => new Promise<void>((resolve) => setImmediate(resolve)) };
  for (const name of Object.keys(ops)) {
    if (name.endsWith('Sync')) continue;
    const run = (ops as unknown as Record<string, (...args: unknown[]) => unknown>)[`${name}Sync`]!;
    table[name] = (...args: unknown[]) => {
      try {
        return Promise.resolve(run(...args));
      } catch (error) {
        return Promise.reject(error);
      }
    };
  }
  return table as unknown as Kernels;
})();

export function kernels(mode: 'async' | 'sync'): Kernels {
  return mode === 'sync' ? syncKernels : asyncKernels;
}
