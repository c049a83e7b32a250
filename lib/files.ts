// files.ts — durable file writes: a temp file in the same directory, fsync,
// rename over the target, fsync the directory. A crash (SIGKILL, power loss)
// at any moment leaves the old file or the new one, never a torn one; what it
// can leave is a temp file, named so that removeTempFiles can find it.
import { randomBytes } from 'node:crypto';
import { open, readdir, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** The temp file a durable write of `path` goes through (".NAME.PID.HEX.tmp" beside it). */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

const TEMP_NAME = /^\..+\.\d+\.[0-9a-f]{8}\.tmp$/;

/** Writes `data` to `path` atomically and durably (temp file, fsync, rename, fsync of the directory); `beforeRename` runs between (a test hook). */
export async function writeFileAtomic(path: string, data: string | Uint8Array, beforeRename?: () => void): Promise<void> {
  const temp = tempPathFor(path);
  let handle: FileHandle | null = null;
  try {
    handle = await open(temp, 'wx');
    await handle.writeFile(data);
    await handle.sync();
    await handle.close();
    handle = null;
    beforeRename?.();
    await rename(temp, path);
  } catch (error) {
    await handle?.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    throw error;
  }
  await syncDirectory(dirname(path));
}

/** fsync of a directory, so the renames in it survive a power loss (best effort: not every platform opens a directory). */
export async function syncDirectory(dir: string): Promise<void> {
  try {
    const handle = await open(dir, 'r');
    await handle.sync().finally(() => handle.close());
  } catch {
    // best effort
  }
}

/** fsync of a file written by appends (a log), so what it holds so far survives a power loss. */
export async function syncFile(path: string): Promise<void> {
  const handle = await open(path, 'r');
  await handle.sync().finally(() => handle.close());
}

/** Removes the temp files that writes interrupted by a crash left in `dir`; returns their names. */
export async function removeTempFiles(dir: string): Promise<string[]> {
  const names = (await readdir(dir).catch(() => [] as string[])).filter((name) => TEMP_NAME.test(name));
  for (const name of names) await unlink(join(dir, name)).catch(() => undefined);
  return names;
}
