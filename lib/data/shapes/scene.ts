// scene.ts — scenes of the shapes testbed: 2 to 5 coloured shapes on a 3x3
// grid of 32-pixel cells of a 96x96 image, generated from a seed; their exact
// geometry (shared by the renderer and the patch helpers, so "which patches
// hold this object" agrees with the pixels) and the cell/patch arithmetic.
import { describe } from '../../tensor.js';
import { check } from '../../validate.js';
import { Rng } from './random.js';

export const SHAPES = ['circle', 'square', 'triangle', 'star'] as const;
export const COLORS = ['red', 'green', 'blue', 'yellow', 'purple'] as const;
export const SIZES = ['small', 'large'] as const;
export type Shape = (typeof SHAPES)[number];
export type Color = (typeof COLORS)[number];
export type Size = (typeof SIZES)[number];

/** Image side in pixels. */
export const IMAGE_SIZE = 96;
/** Cells per side of the grid. */
export const GRID_SIZE = 3;
/** Cell side in pixels. */
export const CELL_SIZE = IMAGE_SIZE / GRID_SIZE;
/** The vision tower's patch side in pixels: 12x12 = 144 visual tokens. */
export const PATCH_SIZE = 8;

export const MIN_OBJECTS = 2;
export const MAX_OBJECTS = 5;
/** Extent across in pixels of each size, both ends included. */
export const DIAMETER_RANGE_PX: Record<Size, readonly [number, number]> = { small: [12, 14], large: [22, 26] };
/** Largest offset of an object's centre from its cell's centre, per axis, in pixels (steps of 0.5). */
export const MAX_JITTER_PX = 2;

/** Saturated fills, far apart in hue, so a small model learns them from a few pixels. */
export const COLOR_RGB: Record<Color, readonly [number, number, number]> = {
  red: [220, 30, 30],
  green: [20, 160, 40],
  blue: [30, 70, 230],
  yellow: [245, 200, 0],
  purple: [150, 40, 200],
};

export interface SceneObject {
  shape: Shape;
  color: Color;
  size: Size;
  /** Grid cell, 0..2 from the top / from the left. */
  row: number;
  col: number;
  /** Centre in pixels (x to the right, y down; pixel (i, j) covers [i, i+1] x [j, j+1]). */
  centerX: number;
  centerY: number;
  /** Extent across in pixels: the shape lies in the square of this side around the centre (a circle, a triangle and a star span it; a square 0.8 of it). */
  diameterPx: number;
}

/** A light grey ground, plain or with a faint seeded texture; all channels equal. */
export type Background =
  | { kind: 'plain'; gray: number }
  | { kind: 'noise'; gray: number; amplitude: number; grainPx: number; noiseSeed: number }
  | { kind: 'stripes'; gray: number; amplitude: number; periodPx: number; orientation: 'horizontal' | 'vertical' | 'diagonal' };

export interface Scene {
  seed: number;
  background: Background;
  /** Sorted by cell, row-major; at most one per cell. */
  objects: SceneObject[];
}

/**
 * The scene of a seed (uint32): 2-5 objects in distinct cells. Colours and
 * shapes are drawn either independently or from a small per-scene palette
 * (half the scenes each), so counts of 2-4 of a kind are common.
 */
export function generateScene(seed: number): Scene {
  const rng = new Rng(seed);
  const numObjects = rng.int(MIN_OBJECTS, MAX_OBJECTS);
  const cells = rng.shuffle(Array.from({ length: GRID_SIZE * GRID_SIZE }, (_, i) => i)).slice(0, numObjects).sort((a, b) => a - b);
  const palette = <T>(items: readonly T[]): readonly T[] => (rng.next() < 0.5 ? items : rng.shuffle(items).slice(0, rng.int(1, 3)));
  const colors = palette(COLORS);
  const shapes = palette(SHAPES);
  const objects = cells.map((cell): SceneObject => {
    const row = Math.floor(cell / GRID_SIZE), col = cell % GRID_SIZE;
    const size = rng.pick(SIZES);
    const [minDiameter, maxDiameter] = DIAMETER_RANGE_PX[size];
    const jitter = () => rng.int(-2 * MAX_JITTER_PX, 2 * MAX_JITTER_PX) / 2;
    return {
      shape: rng.pick(shapes),
      color: rng.pick(colors),
      size,
      row,
      col,
      centerX: col * CELL_SIZE + CELL_SIZE / 2 + jitter(),
      centerY: row * CELL_SIZE + CELL_SIZE / 2 + jitter(),
      diameterPx: rng.int(minDiameter, maxDiameter),
    };
  });
  const gray = rng.int(200, 225);
  const kind = rng.pick(['plain', 'noise', 'stripes'] as const);
  let background: Background;
  if (kind === 'plain') background = { kind, gray };
  else if (kind === 'noise') background = { kind, gray, amplitude: rng.int(3, 8), grainPx: rng.int(1, 3), noiseSeed: rng.uint32() };
  else background = { kind, gray, amplitude: rng.int(3, 8), periodPx: rng.int(6, 12), orientation: rng.pick(['horizontal', 'vertical', 'diagonal'] as const) };
  return { seed: seed >>> 0, background, objects };
}

// ---- geometry --------------------------------------------------------------------------

/** A circle, or a polygon as [x0, y0, x1, y1, ...] in pixels. */
export type Outline = { kind: 'circle'; cx: number; cy: number; r: number } | { kind: 'polygon'; points: number[] };

/** The exact outline the renderer fills; it lies within diameterPx/2 of the centre along each axis. */
export function outlineOf(object: SceneObject): Outline {
  const cx = object.centerX, cy = object.centerY, r = object.diameterPx / 2;
  switch (object.shape) {
    case 'circle':
      return { kind: 'circle', cx, cy, r };
    case 'square': {
      // Side 0.8·diameter: about the circle's area, so size does not tell the shape.
      const half = 0.8 * r;
      return { kind: 'polygon', points: [cx - half, cy - half, cx + half, cy - half, cx + half, cy + half, cx - half, cy + half] };
    }
    case 'triangle': {
      // Apex up, base as wide as the diameter, 0.8r below the centre (the centre is inside).
      const baseY = cy + 0.8 * r;
      return { kind: 'polygon', points: [cx, cy - r, cx + r, baseY, cx - r, baseY] };
    }
    case 'star': {
      // Five points, one up; a fat star (inner radius 0.5r) so a small one still reads as a star.
      const points: number[] = [];
      for (let i = 0; i < 10; i++) {
        const radius = i % 2 === 0 ? r : 0.5 * r;
        const angle = -Math.PI / 2 + (i * Math.PI) / 5;
        points.push(cx + radius * Math.cos(angle), cy + radius * Math.sin(angle));
      }
      return { kind: 'polygon', points };
    }
  }
}

/** Whether the point (x, y) lies inside the outline (even-odd rule; the star is simple, so the same as nonzero). */
export function isInside(outline: Outline, x: number, y: number): boolean {
  if (outline.kind === 'circle') return (x - outline.cx) ** 2 + (y - outline.cy) ** 2 <= outline.r ** 2;
  const p = outline.points, n = p.length / 2;
  let inside = false;
  for (let i = 0, j = n - 1; i < n; j = i++) {
    const xi = p[2 * i]!, yi = p[2 * i + 1]!, xj = p[2 * j]!, yj = p[2 * j + 1]!;
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

// ---- cells and patches -----------------------------------------------------------------

/** Patches per side of the image for a patch size (12 for 8). */
export function patchGridSize(patchSize = PATCH_SIZE): number {
  return Math.floor(IMAGE_SIZE / patchSize);
}

/** The patch (row-major over the patch grid) holding pixel (x, y). */
export function patchOfPixel(x: number, y: number, patchSize = PATCH_SIZE): number {
  return Math.floor(y / patchSize) * patchGridSize(patchSize) + Math.floor(x / patchSize);
}

/** The grid cell a patch lies in (patch sizes that divide 32: each patch lies in exactly one cell). */
export function cellOfPatch(patch: number, patchSize = PATCH_SIZE): { row: number; col: number } {
  const side = patchGridSize(patchSize);
  const patchRow = Math.floor(patch / side), patchCol = patch % side;
  return { row: Math.floor((patchRow * patchSize) / CELL_SIZE), col: Math.floor((patchCol * patchSize) / CELL_SIZE) };
}

/** The patches of a grid cell, ascending (16 for 8-pixel patches). */
export function patchesOfCell(row: number, col: number, patchSize = PATCH_SIZE): number[] {
  const side = patchGridSize(patchSize), perCell = CELL_SIZE / patchSize;
  const out: number[] = [];
  for (let r = row * perCell; r < (row + 1) * perCell; r++) for (let c = col * perCell; c < (col + 1) * perCell; c++) out.push(r * side + c);
  return out;
}

/**
 * The patches an object covers, ascending: those holding at least one pixel
 * whose centre lies inside the object's outline. `scene` is the scene the
 * object belongs to (checked, so a stale object is caught).
 */
export function patchesOfObject(scene: Scene, object: SceneObject, patchSize = PATCH_SIZE): number[] {
  checkScene(scene, 'scene');
  if (!scene.objects.includes(object)) check.fail('ERR_GRIP_RANGE', 'one of scene.objects', 'object', 'an object the scene does not hold');
  check.integer(patchSize, 'patchSize', 1, CELL_SIZE);
  if (CELL_SIZE % patchSize !== 0) check.fail('ERR_GRIP_RANGE', `a divisor of ${CELL_SIZE}`, 'patchSize', String(patchSize));
  const outline = outlineOf(object), r = object.diameterPx / 2;
  const covered = new Set<number>();
  const x0 = Math.max(0, Math.floor(object.centerX - r)), x1 = Math.min(IMAGE_SIZE - 1, Math.ceil(object.centerX + r));
  const y0 = Math.max(0, Math.floor(object.centerY - r)), y1 = Math.min(IMAGE_SIZE - 1, Math.ceil(object.centerY + r));
  for (let y = y0; y <= y1; y++) for (let x = x0; x <= x1; x++) if (isInside(outline, x + 0.5, y + 0.5)) covered.add(patchOfPixel(x, y, patchSize));
  return [...covered].sort((a, b) => a - b);
}

/** The object in a cell, if any. */
export function objectAt(scene: Scene, row: number, col: number): SceneObject | undefined {
  return scene.objects.find((o) => o.row === row && o.col === col);
}

// ---- validation ------------------------------------------------------------------------

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** Checks a scene given by a caller (possibly parsed from JSON): fields, ranges, one object per cell, objects inside their cells. */
export function checkScene(scene: unknown, what: string): asserts scene is Scene {
  if (!isRecord(scene) || !Array.isArray(scene.objects) || !isRecord(scene.background)) {
    check.fail('ERR_GRIP_RANGE', 'a scene {seed, background, objects}', what, describe(scene));
  }
  const background = scene.background as Record<string, unknown>;
  check.oneOf(background.kind, `${what}.background.kind`, ['plain', 'noise', 'stripes']);
  check.integer(background.gray, `${what}.background.gray`, 0, 255);
  if (background.kind !== 'plain') check.integer(background.amplitude, `${what}.background.amplitude`, 0, 64);
  if (background.kind === 'noise') {
    check.integer(background.grainPx, `${what}.background.grainPx`, 1, IMAGE_SIZE);
    check.integer(background.noiseSeed, `${what}.background.noiseSeed`, 0, 0xffffffff);
  }
  if (background.kind === 'stripes') {
    check.integer(background.periodPx, `${what}.background.periodPx`, 2, IMAGE_SIZE);
    check.oneOf(background.orientation, `${what}.background.orientation`, ['horizontal', 'vertical', 'diagonal']);
  }
  const taken = new Set<number>();
  (scene.objects as unknown[]).forEach((object, i) => {
    const name = `${what}.objects[${i}]`;
    if (!isRecord(object)) check.fail('ERR_GRIP_RANGE', 'an object {shape, color, size, row, col, centerX, centerY, diameterPx}', name, describe(object));
    check.oneOf(object.shape, `${name}.shape`, SHAPES);
    check.oneOf(object.color, `${name}.color`, COLORS);
    check.oneOf(object.size, `${name}.size`, SIZES);
    check.integer(object.row, `${name}.row`, 0, GRID_SIZE - 1);
    check.integer(object.col, `${name}.col`, 0, GRID_SIZE - 1);
    const cell = (object.row as number) * GRID_SIZE + (object.col as number);
    if (taken.has(cell)) check.fail('ERR_GRIP_RANGE', 'at most one object per cell', name, `a second object in cell (${String(object.row)}, ${String(object.col)})`);
    taken.add(cell);
    check.number(object.diameterPx, `${name}.diameterPx`, (v) => Number.isFinite(v) && v > 0 && v <= CELL_SIZE, `a number in (0, ${CELL_SIZE}]`);
    const r = (object.diameterPx as number) / 2;
    for (const [key, start] of [['centerX', (object.col as number) * CELL_SIZE], ['centerY', (object.row as number) * CELL_SIZE]] as const) {
      check.number(object[key], `${name}.${key}`, (v) => Number.isFinite(v) && v - r >= start && v + r <= start + CELL_SIZE,
        `a centre that keeps the object inside its cell [${start}, ${start + CELL_SIZE}]`);
    }
  });
}
