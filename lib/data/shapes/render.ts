// render.ts — draws a scene: the grey ground (plain, noise or stripes) is
// computed here pixel by pixel, the shapes are an SVG that sharp (librsvg)
// rasterises with antialiasing and composites on top. The PNG and the raw RGB
// come from the same pixels (PNG is lossless).
import sharp from 'sharp';
import { GripError } from '../../errors.js';
import { hashInts } from './random.js';
import { COLOR_RGB, IMAGE_SIZE, checkScene, outlineOf, type Background, type Scene } from './scene.js';

const RAW = { width: IMAGE_SIZE, height: IMAGE_SIZE, channels: 3 } as const;

/** The ground of a scene as raw RGB [96, 96, 3]; grey, so every channel is the same. */
export function renderBackground(background: Background): Uint8Array {
  const out = new Uint8Array(IMAGE_SIZE * IMAGE_SIZE * 3);
  for (let y = 0; y < IMAGE_SIZE; y++) {
    for (let x = 0; x < IMAGE_SIZE; x++) {
      let value = background.gray;
      if (background.kind === 'noise') {
        const grain = background.grainPx;
        const u = hashInts(background.noiseSeed, Math.floor(x / grain), Math.floor(y / grain)) / 4294967296;
        value += Math.round(background.amplitude * (2 * u - 1));
      } else if (background.kind === 'stripes') {
        const along = background.orientation === 'horizontal' ? y : background.orientation === 'vertical' ? x : x + y;
        // Two bands per period, the darker one amplitude below the ground.
        if (Math.floor((2 * along) / background.periodPx) % 2 === 1) value -= background.amplitude;
      }
      out.fill(Math.max(0, Math.min(255, value)), 3 * (y * IMAGE_SIZE + x), 3 * (y * IMAGE_SIZE + x) + 3);
    }
  }
  return out;
}

const coordinate = (v: number) => String(Math.round(v * 1e4) / 1e4);

/** The scene's shapes as an SVG document (transparent ground, 96x96 user units = pixels). */
export function sceneSvg(scene: Scene): string {
  checkScene(scene, 'scene');
  const shapes = scene.objects.map((object) => {
    const fill = `rgb(${COLOR_RGB[object.color].join(',')})`;
    const outline = outlineOf(object);
    if (outline.kind === 'circle') return `<circle cx="${coordinate(outline.cx)}" cy="${coordinate(outline.cy)}" r="${coordinate(outline.r)}" fill="${fill}"/>`;
    return `<polygon points="${outline.points.map(coordinate).join(' ')}" fill="${fill}"/>`;
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${IMAGE_SIZE}" height="${IMAGE_SIZE}" viewBox="0 0 ${IMAGE_SIZE} ${IMAGE_SIZE}">${shapes.join('')}</svg>`;
}

/** The scene as raw RGB, row-major [96, 96, 3] (96*96*3 bytes). */
export async function renderSceneRGB(scene: Scene): Promise<Uint8Array> {
  const svg = sceneSvg(scene); // checks the scene
  const { data, info } = await sharp(renderBackground(scene.background), { raw: RAW })
    .composite([{ input: Buffer.from(svg), top: 0, left: 0 }])
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.width !== IMAGE_SIZE || info.height !== IMAGE_SIZE || info.channels !== 3) {
    throw new GripError('ERR_GRIP_INTERNAL', `expected a ${IMAGE_SIZE}x${IMAGE_SIZE}x3 image from sharp but received ${info.width}x${info.height}x${info.channels}`);
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** The scene as a PNG (the pixels of renderSceneRGB, losslessly). */
export async function renderScene(scene: Scene): Promise<Buffer> {
  return encodePng(await renderSceneRGB(scene));
}

/** A PNG of raw RGB [96, 96, 3] pixels (the export renders once and writes both). */
export function encodePng(rgb: Uint8Array): Promise<Buffer> {
  return sharp(rgb, { raw: RAW }).png({ compressionLevel: 9 }).toBuffer();
}
