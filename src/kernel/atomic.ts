/**
 * Replacing a file so that a crash or a concurrent reader sees the old
 * content or the new, never a torn one: a temporary file in the same
 * directory, written and fsync'd, renamed over the target, then the
 * directory fsync'd so the rename itself survives a power cut. The state
 * files (state.ts), `stats --output`, `replay --output` and `learn --write`
 * all write this way.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * Write `data` to `path` atomically. `mode` is the new file's permission bits
 * (before the umask): the rename replaces the old file, so its mode is not
 * kept. On failure the temporary file is removed and `path` is untouched.
 */
export function writeFileAtomic(path: string, data: string, mode: number): void {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(3).toString('hex')}`;
  const fd = openSync(tmp, 'w', mode);
  try {
    try {
      writeSync(fd, data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      /* already gone */
    }
    throw e;
  }
  syncDir(dirname(path));
}

/** fsync a directory, so a rename or unlink in it is durable. */
export function syncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    /* some filesystems refuse fsync on a directory; the rename is still atomic */
  }
}
