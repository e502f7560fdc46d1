/**
 * Reading a file a user named (a policy, a set file) without trusting what
 * it is: only a regular file is read, never more than `maxBytes`, and opening
 * never blocks. `/dev/zero` as a policy once grew the process to 24 GB until
 * the OOM killer came, and a FIFO hung `apply` forever.
 *
 * Files under /proc report size 0 and still have content, so the size check
 * is made on what is read, not only on what fstat says.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';

/**
 * 4 MiB: far above any hand-written policy (5,000 rules are about 400 KiB).
 * YAML costs about 100 bytes of memory per byte of input at its peak, so
 * this bounds a policy run near 400 MiB; long address lists belong in set
 * files, which are read line by line.
 */
export const MAX_POLICY_BYTES = 4 * 1024 * 1024;
/** 256 MiB: a set file of several million addresses still fits. */
export const MAX_SET_FILE_BYTES = 256 * 1024 * 1024;

/** A refusal with the wording errnoText gives it (no errno code: the message is the text). */
export class FileRefused extends Error {}

function kindOf(mode: number): string {
  switch (mode & constants.S_IFMT) {
    case constants.S_IFDIR:
      return 'a directory';
    case constants.S_IFIFO:
      return 'a FIFO (named pipe)';
    case constants.S_IFCHR:
      return 'a character device';
    case constants.S_IFBLK:
      return 'a block device';
    case constants.S_IFSOCK:
      return 'a socket';
    default:
      return 'not a regular file';
  }
}

function mib(n: number): string {
  const m = n / (1024 * 1024);
  return `${m < 10 ? m.toFixed(1).replace(/\.0$/, '') : Math.round(m)} MiB`;
}

/**
 * The bytes of the regular file at `path` (links followed), refusing other
 * kinds of file and anything longer than `maxBytes` with a FileRefused whose
 * message says which. Errors of open/read are passed on as they are.
 */
export function readBounded(path: string, maxBytes: number): Buffer {
  // O_NONBLOCK: opening a FIFO with no writer must not wait for one (it is refused just after).
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new FileRefused(`is ${kindOf(st.mode)}, not a regular file`);
    if (st.size > maxBytes) throw new FileRefused(`is ${mib(st.size)}, more than the ${mib(maxBytes)} allowed`);
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const want = Math.min(Math.max(st.size - total, 64 * 1024), maxBytes + 1 - total);
      const buf = Buffer.allocUnsafe(Math.max(1, want));
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      chunks.push(n === buf.length ? buf : buf.subarray(0, n));
      total += n;
      if (total > maxBytes) throw new FileRefused(`is more than the ${mib(maxBytes)} allowed`);
    }
    return Buffer.concat(chunks, total);
  } finally {
    closeSync(fd);
  }
}
