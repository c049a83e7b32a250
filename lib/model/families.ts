// families.ts — the model families loadVLM knows, chosen by the
// `architectures` of config.json. Adding a family: write its module under
// lib/model/<family>/ (see docs/adding-a-family.md) and list it here.
import { join } from 'node:path';
import { readJsonFile } from '../json.js';
import type { Family } from './family.js';
import { llava } from './llava/index.js';
import { llavaNext } from './llava_next/index.js';
import { qwenVL } from './qwen_vl/index.js';

export const FAMILIES: readonly Family[] = [llava, llavaNext, qwenVL];

/**
 * The family of the checkpoint in `dir`. An unreadable or unknown config.json
 * goes to LLaVA, the first family, whose loader reports exactly what is wrong
 * with it (the errors loadVLM has always given).
 */
export async function familyOf(dir: string): Promise<Family> {
  let architectures: unknown;
  try {
    architectures = (await readJsonFile(join(dir, 'config.json'), 'config.json')).architectures;
  } catch {
    return FAMILIES[0]!; // its loader reads the file again and reports the fault
  }
  const names = Array.isArray(architectures) ? architectures : [];
  return FAMILIES.find((f) => names.some((n) => f.architectures.includes(n as string))) ?? FAMILIES[0]!;
}
