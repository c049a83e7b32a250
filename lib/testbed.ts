// testbed.ts — the entry `grip-vlm/testbed`: the synthetic shapes data set
// the embedded model was trained on, the evaluation (accuracy and prefill
// time per pruner and keep ratio, tables, Pareto plots, pictures of the kept
// patches) and the demo.
export * as shapes from './data/shapes/index.js';
export { evaluate, type EvalExample, type EvalRow, type EvalOptions } from './eval/evaluate.js';
export { comparisonTable, markdownTable, paretoSvg, svgToPng } from './eval/report.js';
export { mcnemarExact, pairedComparisons, wilson, Z95, type OutcomeRow, type PairedComparison } from './eval/stats.js';
export { keptStrip, type KeptPicture } from './eval/pictures.js';
export { runDemo, embeddedModelDir, defaultPruner, type DemoOptions } from './demo.js';
