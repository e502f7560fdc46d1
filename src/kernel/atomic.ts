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
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(8).toString('hex')}`;
  // O_EXCL (with O_CREAT it also refuses a symlink): a name another user planted in a writable directory
  // makes this fail, never write through their link (D4).
  const fd = openSync(tmp, 'wx', mode);
  try {
    try {
      writeAll(fd, Buffer.from(data, 'utf8'));
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

/**
 * Write every byte or throw: write(2) may write less than asked (a nearly
 * full filesystem wrote 65,536 of 157,736 bytes of live.json, and the cut file
 * was renamed over the good one); the next write then fails with ENOSPC.
 */
export function writeAll(fd: number, buf: Buffer, write: (fd: number, b: Buffer, off: number, len: number) => number = writeSync): void {
  let off = 0;
  while (off < buf.length) {
    const n = write(fd, buf, off, buf.length - off);
    if (n <= 0) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    off += n;
  }
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
