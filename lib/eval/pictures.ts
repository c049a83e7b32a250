// pictures.ts — which patches a pruner kept, drawn over the image: kept
// patches at full brightness, dropped ones dimmed, a faint patch grid.
import sharp, { type OverlayOptions } from 'sharp';

export interface KeptPicture {
  /** Raw RGB of the model's input image, [size, size, 3]. */
  rgb: Uint8Array;
  size: number;
  /** Patches per side (the visual token grid). */
  grid: number;
  kept: ArrayLike<number>;
  label?: string;
}

/**
 * Why a model's kept tokens cannot be drawn (undefined where they can). A
 * panel is one square crop under a square grid of patches, token i at row
 * i / grid, column i % grid: LLaVA-1.5's layout. LLaVA-NeXT's visual tokens
 * (the base image, then each tile's unpadded rows with an image_newline
 * token after each row) have no such grid, so its model reports a 1 x N grid.
 */
export function keptPicturesUnsupported(grid: { rows: number; cols: number }, numImageTokens: number): string | undefined {
  if (grid.rows === grid.cols && grid.rows * grid.cols === numImageTokens) return undefined;
  return `the pictures draw one square grid of patches, and this model's visual tokens form a ${grid.rows} x ${grid.cols} layout (several crops, as LLaVA-NeXT's base image and tiles)`;
}

/** One panel: the image scaled up `scale` times with the dropped patches dimmed. */
export function keptPanel(p: KeptPicture, scale: number): { data: Uint8Array; width: number; height: number } {
  const kept = new Uint8Array(p.grid * p.grid);
  for (let i = 0; i < p.kept.length; i++) kept[p.kept[i]!] = 1;
  const patch = p.size / p.grid;
  const W = p.size * scale;
  const out = new Uint8Array(W * W * 3);
  for (let y = 0; y < W; y++) {
    for (let x = 0; x < W; x++) {
      const sx = Math.floor(x / scale), sy = Math.floor(y / scale);
      const keep = kept[Math.floor(sy / patch) * p.grid + Math.floor(sx / patch)] === 1;
      const onGrid = x % (patch * scale) === 0 || y % (patch * scale) === 0;
      for (let c = 0; c < 3; c++) {
        const v = p.rgb[(sy * p.size + sx) * 3 + c]!;
        out[(y * W + x) * 3 + c] = onGrid ? 200 : keep ? v : Math.round(v * 0.2 + 20);
      }
    }
  }
  return { data: out, width: W, height: W };
}

/** Panels side by side with their labels underneath, as a PNG. */
export async function keptStrip(panels: readonly KeptPicture[], scale = 3): Promise<Buffer> {
  const drawn = panels.map((p) => keptPanel(p, scale));
  const gap = 8, labelH = 22;
  const width = drawn.reduce((w, d) => w + d.width + gap, gap);
  const height = Math.max(...drawn.map((d) => d.height)) + labelH + 2 * gap;
  let left = gap;
  const layers: OverlayOptions[] = [];
  drawn.forEach((d, i) => {
    layers.push({ input: Buffer.from(d.data), raw: { width: d.width, height: d.height, channels: 3 }, top: gap, left });
    const label = panels[i]!.label;
    if (label) {
      const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${d.width}" height="${labelH}"><text x="${d.width / 2}" y="16" text-anchor="middle" font-family="sans-serif" font-size="13">${label.replace(/[<>&]/g, '')}</text></svg>`;
      layers.push({ input: Buffer.from(svg), top: gap + d.height + 2, left });
    }
    left += d.width + gap;
  });
  return sharp({ create: { width, height, channels: 3, background: '#ffffff' } }).composite(layers).png().toBuffer();
}
