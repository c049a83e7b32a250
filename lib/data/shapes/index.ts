// index.ts — the shapes testbed: seeded scenes of coloured shapes on a 3x3
// grid (96x96 images, 12x12 patches of 8 pixels), rendered with sharp, and
// balanced one-word-answer questions about them in disjoint splits.
export {
  SHAPES, COLORS, SIZES, COLOR_RGB, IMAGE_SIZE, GRID_SIZE, CELL_SIZE, PATCH_SIZE, MIN_OBJECTS, MAX_OBJECTS, DIAMETER_RANGE_PX, MAX_JITTER_PX,
  generateScene, checkScene, outlineOf, isInside, objectAt,
  patchGridSize, patchOfPixel, cellOfPatch, patchesOfCell, patchesOfObject,
  type Shape, type Color, type Size, type SceneObject, type Background, type Scene, type Outline,
} from './scene.js';
export { renderScene, renderSceneRGB, renderBackground, sceneSvg, encodePng } from './render.js';
export {
  QUESTION_KINDS, SPLITS, POSITIONS, COUNT_WORDS, RELATIONS, ANSWERS, PROMPT_TEMPLATE, VOCABULARY,
  enumerateQuestions, examplesOfScene, makeExamples, sceneSeedOf, splitOfSeed,
  type QuestionKind, type Split, type Question, type Example,
} from './questions.js';
export { Rng, hashInts } from './random.js';
