/**
 * The state directory's append-only JSONL files (history.jsonl,
 * counters.jsonl) and how they are kept from growing forever. A line is
 * appended with one write and fsynced; when its file is over its limit, the
 * caller rewrites it — what it keeps, with the new line — to a temporary
 * file in the same directory, fsynced, and renamed over it, so a crash at any
 * point leaves the old file or the new one, never a cut one. Callers hold the
 * state directory's lock (kernel/lock.ts), so one rewrite runs at a time and
 * no append slips in between the read and the rename.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fstatSync, fsyncSync, openSync, readdirSync, readSync, renameSync, unlinkSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { syncDir, writeAll } from './atomic.js';

/** Test seam: runs between the temporary file's fsync and its rename (a throw here is a crash at that point: the temporary file stays). */
export interface RewriteSeam {
  beforeRename?(tmp: string): void;
}

/**
 * Append one line (a newline is added). When the file ends in a torn line
 * (a crash mid-write), the new line starts on a line of its own, so it is
 * not glued to the torn one and lost with it.
 */
export function appendLine(path: string, line: string, mode: number): void {
  const fd = openSync(path, 'a+', mode);
  try {
    const size = fstatSync(fd).size;
    let torn = false;
    if (size > 0) {
      const last = Buffer.alloc(1);
      readSync(fd, last, 0, 1, size - 1);
      torn = last[0] !== 0x0a;
    }
    writeAll(fd, Buffer.from(`${torn ? '\n' : ''}${line}\n`, 'utf8'));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

const TMP = '.tmp-';

/**
 * Replace `path` by `lines` (one newline after each), atomically. Temporary
 * files an earlier rewrite of the same file left (a kill between its write
 * and its rename) are removed first: under the lock, none of them is live.
 */
export function rewriteLines(path: string, lines: readonly string[], mode: number, seam: RewriteSeam = {}): void {
  removeLeftovers(path);
  const tmp = `${path}${TMP}${process.pid}-${randomBytes(6).toString('hex')}`;
  // O_EXCL: never write through a name someone planted (as atomic.ts does).
  const fd = openSync(tmp, 'wx', mode);
  try {
    try {
      writeAll(fd, Buffer.from(lines.map((l) => `${l}\n`).join(''), 'utf8'));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      /* already gone */
    }
    throw e;
  }
  seam.beforeRename?.(tmp);
  renameSync(tmp, path);
  syncDir(dirname(path));
}

/** The temporary files rewrites of `path` left behind. */
export function leftovers(path: string): string[] {
  const prefix = basename(path) + TMP;
  try {
    return readdirSync(dirname(path))
      .filter((n) => n.startsWith(prefix))
      .map((n) => join(dirname(path), n));
  } catch {
    return [];
  }
}

function removeLeftovers(path: string): void {
  for (const p of leftovers(path)) {
    try {
      unlinkSync(p);
    } catch {
      /* gone meanwhile */
    }
  }
}
