/**
 * The forwarder's log file, capped: appended to until it holds `maxBytes`,
 * then renamed to `PATH.1` (replacing the previous one) and started afresh.
 * At most two files, so the log of a busy host stays under 2 × maxBytes;
 * readers (src/logs/dns-log.ts) read `PATH.1` then `PATH`.
 *
 * Writes are buffered by the stream; the rename happens at once (writes
 * still queued on the old stream land in the renamed file: same inode).
 */
import { createWriteStream, openSync, renameSync, statSync, type WriteStream } from 'node:fs';

/** 16 MiB: ~100,000 answer records per file. */
export const LOG_MAX_BYTES = 16 * 1024 * 1024;

export class RotatingLog {
  private out: WriteStream;
  private size: number;

  constructor(
    private readonly path: string,
    private readonly maxBytes = LOG_MAX_BYTES,
  ) {
    this.size = sizeOf(path);
    this.out = this.open();
  }

  /** Append one line (without its newline). */
  write(line: string): void {
    const text = line + '\n';
    if (this.size > 0 && this.size + Buffer.byteLength(text) > this.maxBytes) this.rotate();
    this.out.write(text);
    this.size += Buffer.byteLength(text);
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.out.end(resolve));
  }

  private rotate(): void {
    this.out.end();
    try {
      renameSync(this.path, `${this.path}.1`);
    } catch {
      // cannot rename (gone, read-only): keep appending to a fresh stream rather than stop logging
    }
    this.size = sizeOf(this.path);
    this.out = this.open();
  }

  private open(): WriteStream {
    // Opened now (not by the stream, later), so a rotation right after finds the file to rename.
    const s = createWriteStream('', { fd: openSync(this.path, 'a', 0o600) });
    s.on('error', () => {}); // a full disk must not stop the forwarder
    return s;
  }
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
