/**
 * The forwarder's log file, capped and batched.
 *
 * - **Capped**: appended to until the next line would take it past
 *   `maxBytes`, then renamed to `PATH.1` (replacing the previous one) and
 *   started afresh. At most two files, so the log of a busy host stays under
 *   2 × maxBytes; readers (src/logs/dns-log.ts) read `PATH.1` then `PATH`.
 * - **Batched**: lines are kept in memory and written together, every
 *   `FLUSH_MS` or `FLUSH_BYTES`, with one synchronous write. A write per line
 *   (a stream) costs the forwarder a thread-pool round trip per answer;
 *   bench/dns.mjs measured it in the forwarded answers' latency. The batch is
 *   also written at rotation, at `close()` and when the process exits, so a
 *   SIGTERM loses nothing; a crash loses at most FLUSH_MS of records.
 */
import { closeSync, openSync, renameSync, statSync, writeSync } from 'node:fs';

/** 16 MiB: ~100,000 answer records per file. */
export const LOG_MAX_BYTES = 16 * 1024 * 1024;
const FLUSH_MS = 200;
const FLUSH_BYTES = 256 * 1024;

export class RotatingLog {
  private fd: number;
  private size: number;
  private pending: string[] = [];
  private pendingBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly onExit = () => this.flush();

  constructor(
    private readonly path: string,
    private readonly maxBytes = LOG_MAX_BYTES,
  ) {
    this.size = sizeOf(path);
    this.fd = openSync(path, 'a', 0o600);
    process.on('exit', this.onExit);
  }

  /** Append one line (without its newline). */
  write(line: string): void {
    const text = line + '\n';
    const bytes = Buffer.byteLength(text);
    if (this.size > 0 && this.size + bytes > this.maxBytes) this.rotate();
    this.pending.push(text);
    this.pendingBytes += bytes;
    this.size += bytes;
    if (this.pendingBytes >= FLUSH_BYTES) this.flush();
    else if (!this.timer) {
      this.timer = setTimeout(() => this.flush(), FLUSH_MS);
      this.timer.unref();
    }
  }

  /** Write what is pending now. */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.pending.length) return;
    const text = this.pending.join('');
    this.pending = [];
    this.pendingBytes = 0;
    try {
      writeSync(this.fd, text);
    } catch {
      // a full disk must not stop the forwarder: these records are lost
    }
  }

  close(): void {
    this.flush();
    process.removeListener('exit', this.onExit);
    closeSync(this.fd);
  }

  private rotate(): void {
    this.flush();
    closeSync(this.fd);
    try {
      renameSync(this.path, `${this.path}.1`);
    } catch {
      // cannot rename (gone, read-only): keep appending rather than stop logging
    }
    this.size = sizeOf(this.path);
    this.fd = openSync(this.path, 'a', 0o600);
  }
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
