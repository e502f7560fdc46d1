/**
 * Where log lines come from: files (plain or gzip, detected by magic bytes;
 * Windows Firewall logs detected by their `#Version`/`#Fields` header),
 * standard input, the journal (`journalctl -k -o json`, spawned through the
 * Execer seam) and /dev/kmsg. Every line goes through a parser; events go to
 * the caller's sink as they are read, so memory does not grow with the log.
 *
 * Input is decoded as latin1 (one character per byte: no UTF-8 validation on
 * the hot path; every field the parser reads is ASCII). `--follow` polls:
 * new bytes are read as they arrive; a file whose inode changed (rotated by
 * rename) is read to its end and the new file opened; a file that shrank
 * (rotated by copytruncate) is read again from the start.
 */
import { errnoText } from '../diag/errno.js';
import { createReadStream } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { constants } from 'node:fs';
import { Readable } from 'node:stream';
import { createGunzip, inflateRawSync } from 'node:zlib';
import { readFile } from 'node:fs/promises';
import { assertNever } from '../diag/diagnostic.js';
import type { Execer } from '../kernel/exec.js';
import { addCounts, emptyCounts, MAX_PROBLEMS, type LogEvent, type ReadCounts } from './event.js';
import { KernelLineParser, type ParseOptions } from './parse-kernel.js';
import { looksLikePfirewall, PfirewallLines } from './pfirewall.js';

export type LogSource =
  | { kind: 'file'; path: string; name: string }
  /** Chunks as they come (a pipe may never end: `tail -F kern.log | egress stats --follow -`). Strings are UTF-8 text, Buffers raw bytes. */
  | { kind: 'stdin'; chunks: () => AsyncIterable<Buffer | string> }
  | { kind: 'journal' }
  | { kind: 'kmsg'; path?: string };

export interface ReadOptions extends ParseOptions {
  /** Keep reading as the logs grow, until `signal` aborts. */
  follow?: boolean;
  signal?: AbortSignal;
  /** For --journal. */
  execer?: Execer;
  /** How often --follow looks for new data (default 500 ms). */
  pollMs?: number;
}

export type EventSink = (e: LogEvent) => void;

/** A log source that cannot be read: the message is user-facing. */
export class ReadError extends Error {}

/**
 * Read size. A decoded chunk is a flat V8 string (the fastest kind to scan)
 * and, below V8's large-object size (128 KiB), one that dies young: 512 KiB
 * chunks went to the large-object space, which only a full collection frees,
 * and took `stats` of a 2M-line .gz to 280 MB RSS (BENCHMARKS.md, "Memory").
 */
export const CHUNK = 1 << 16;
let chunkIds = 0;
/** A "line" longer than this is not a log line (binary file, missing newlines): it is dropped and counted. */
const MAX_LINE = 1 << 16;


/** A line as the range s[a, b) of a chunk (see KernelLineParser.parseRange); `chunk` names `s`. */
export type OnLine = (s: string, a: number, b: number, chunk: number, lineNo: number) => void;

/** Splits decoded text into lines, handed on as ranges (no slicing); keeps an unfinished last line for the next chunk. */
export class LineSplitter {
  private carry = '';
  /** Inside a too-long line that was already counted: its remainder is dropped. */
  private skipping = false;
  lineNo = 0;
  constructor(
    private readonly onLine: OnLine,
    private readonly onTooLong: (lineNo: number) => void,
  ) {}

  push(chunk: string): void {
    let i = 0;
    if (this.skipping) {
      // The rest of a line already counted as too long: drop it up to its end, counting nothing again.
      const nl = chunk.indexOf('\n');
      if (nl < 0) return;
      this.skipping = false;
      i = nl + 1;
    }
    if (this.carry) {
      // The line begun in the last chunk, finished on its own: the chunk itself is scanned as it is (no copy joined to it).
      const nl = chunk.indexOf('\n', i);
      if (nl < 0) {
        this.carry += chunk.slice(i);
        this.carryTooLong();
        return;
      }
      const line = this.carry + chunk.slice(i, nl);
      this.carry = '';
      this.line(line, 0, line.length, ++chunkIds);
      i = nl + 1;
    }
    const id = ++chunkIds;
    for (let j = chunk.indexOf('\n', i); j >= 0; j = chunk.indexOf('\n', i)) {
      this.line(chunk, i, j, id);
      i = j + 1;
    }
    this.carry = i === 0 ? chunk : chunk.slice(i);
    this.carryTooLong();
  }

  /** The line s[a, b) (b at its newline, a CR before it dropped). */
  private line(s: string, a: number, b: number, id: number): void {
    const end = b > a && s.charCodeAt(b - 1) === 13 ? b - 1 : b;
    this.lineNo++;
    if (end - a > MAX_LINE) this.onTooLong(this.lineNo);
    else this.onLine(s, a, end, id, this.lineNo);
  }

  private carryTooLong(): void {
    if (this.carry.length > MAX_LINE) {
      // One line, however many chunks it spans: counted once, and the line numbers after it stay right.
      this.lineNo++;
      this.onTooLong(this.lineNo);
      this.carry = '';
      this.skipping = true;
    }
  }

  /**
   * Lines [0, lineNo) were handed on; the rest of `full` (the whole input,
   * recovered another way) replaces what is pending: a part-line carried, or
   * a last chunk the stream lost.
   */
  resumeFrom(full: string): void {
    let at = 0;
    for (let n = 0; n < this.lineNo && at >= 0; n++) {
      const nl = full.indexOf('\n', at);
      at = nl < 0 ? -1 : nl + 1;
    }
    // Only when it holds more than what is pending (a cut last member recovers nothing the stream had not).
    if (at < 0 || full.length - at <= this.carry.length) return;
    this.carry = '';
    this.skipping = false;
    this.push(full.slice(at));
  }

  /** The input ended: an unfinished last line is a line (possibly truncated). */
  end(): void {
    this.skipping = false;
    if (this.carry) {
      this.lineNo++;
      this.onLine(this.carry, 0, this.carry.length, ++chunkIds, this.lineNo);
    }
    this.carry = '';
  }
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

/** Settles with 'abort' when `signal` aborts (never, without one): to race against a blocking read. */
const whenAborted = (signal?: AbortSignal) =>
  new Promise<'abort'>((resolve) => {
    if (signal?.aborted) resolve('abort');
    signal?.addEventListener('abort', () => resolve('abort'), { once: true });
  });

/**
 * Reads every source in turn (files oldest first, by modification time, so
 * `kern.log kern.log.1 kern.log.2.gz` dedupe across rotation), then, with
 * `follow`, keeps following them all until `signal` aborts.
 */
export class LogReader {
  private readonly parts: ReadCounts[] = [];
  private readonly parsers: KernelLineParser[] = [];
  /** Bytes read so far from files and standard input (a .gz: compressed bytes), for progress. */
  bytesRead = 0;

  constructor(
    private readonly sources: readonly LogSource[],
    private readonly opts: ReadOptions,
    private readonly sink: EventSink,
  ) {}

  /** Everything read so far (live while following). */
  get counts(): ReadCounts {
    const c = emptyCounts();
    for (const p of this.parts) addCounts(c, p);
    return c;
  }

  async run(): Promise<ReadCounts> {
    const files = this.sources.filter((s): s is Extract<LogSource, { kind: 'file' }> => s.kind === 'file');
    const ages = new Map<string, number>();
    for (const f of files) ages.set(f.path, await stat(f.path).then((s) => s.mtimeMs, () => 0));
    const ordered = [...files].sort((a, b) => ages.get(a.path)! - ages.get(b.path)!);
    const rest = this.sources.filter((s) => s.kind !== 'file');
    const followers: Promise<void>[] = [];
    for (const s of [...ordered, ...rest]) {
      const f = await this.readSource(s);
      if (f && this.opts.follow) followers.push(f());
    }
    await Promise.all(followers);
    return this.counts;
  }

  /** Prefixes of lines of other LOG rules, from a sample of them (KernelLineParser.otherPrefixes), over every source. */
  otherPrefixes(): Map<string, number> {
    const m = new Map<string, number>();
    for (const p of this.parsers) for (const [k, n] of p.otherPrefixes) m.set(k, (m.get(k) ?? 0) + n);
    return m;
  }

  private parser(): KernelLineParser {
    const p = new KernelLineParser(this.opts);
    this.parts.push(p.counts);
    this.parsers.push(p);
    return p;
  }

  /** Where a source's lines go, by its first bytes: the pfirewall.log reader (its header) or the kernel line parser. */
  private lineHandler(p: KernelLineParser, head: string, name: string): OnLine {
    // UTF-16 (what some Windows exports write): every line would be "other", 0 events, and nothing said (D18).
    if (looksUtf16(head)) throw new ReadError(`cannot read ${name}: it is UTF-16; convert it first (iconv -f UTF-16 -t UTF-8 ${name} > ${name}.utf8)`);
    if (!looksLikePfirewall(head)) return (t, a, b, c, n) => this.emit(p.parseRange(t, a, b, c, name, n));
    const pf = new PfirewallLines(p.counts, this.opts.since);
    return (t, a, b, _c, n) => this.emit(pf.line(t.slice(a, b), name, n));
  }

  /** Reads a source to its current end; returns the follow loop for it, if it can be followed. */
  private async readSource(s: LogSource): Promise<(() => Promise<void>) | undefined> {
    switch (s.kind) {
      case 'file':
        return this.readFile(s.path, s.name);
      case 'stdin':
        await this.readStream(s.chunks(), 'stdin');
        return undefined;
      case 'journal':
        return this.readJournal();
      case 'kmsg':
        return this.readKmsg(s.path ?? '/dev/kmsg');
      default:
        return assertNever(s);
    }
  }

  /**
   * Standard input (or a FIFO: `<(zcat kern.log.2.gz)`) as it streams: lines
   * are counted as they arrive (with --follow, the periodic report sees
   * them), until the input ends or the signal aborts. Gzip is decompressed;
   * then the first 64 bytes decide kernel log or pfirewall.log.
   */
  private async readStream(chunks: AsyncIterable<Buffer | string>, name: string): Promise<void> {
    const p = this.parser();
    // Made once the head is known, so each line goes straight to its parser.
    let split: LineSplitter | undefined;
    let head = '';
    const decide = (): LineSplitter => {
      if (split) return split;
      split = new LineSplitter(this.lineHandler(p, head, name), (n) => tooLong(p.counts, name, n));
      split.push(head);
      return split;
    };
    let damage: Error | undefined;
    // The source's own iterator is returned at the end (process.stdin: destroyed at once, though a read is pending).
    const source = chunks[Symbol.asyncIterator]();
    const it = gunzipped({ [Symbol.asyncIterator]: () => source }, (e) => (damage = e));
    const aborted = whenAborted(this.opts.signal);
    try {
      for (;;) {
        const r = await Promise.race([it.next(), aborted]);
        if (r === 'abort' || r.done) break;
        // Latin-1 keeps every byte as one char, as for files; text handed in as a string is UTF-8.
        const text = typeof r.value === 'string' ? Buffer.from(r.value, 'utf8').toString('latin1') : r.value.toString('latin1');
        this.bytesRead += text.length;
        if (split) split.push(text);
        else {
          head += text;
          if (head.length >= 64) decide();
        }
      }
    } finally {
      // Not awaited: a source blocked in its next chunk finishes its return only after that chunk.
      // For process.stdin it destroys the stream at once, so nothing keeps the process alive.
      void source.return?.()?.catch(() => undefined);
      void it.return(undefined).catch(() => undefined);
    }
    if (damage) gzipDamage(p.counts, name, decide().lineNo + 1, damage);
    decide().end();
  }

  private emit(e: LogEvent | undefined): void {
    if (e) this.sink(e);
  }

  private async readFile(path: string, name: string): Promise<(() => Promise<void>) | undefined> {
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (e) {
      throw new ReadError(`cannot read ${name}: ${errnoText(e)}`);
    }
    let st;
    try {
      st = await fh.stat();
    } catch (e) {
      await fh.close();
      throw new ReadError(`cannot read ${name}: ${errnoText(e)}`);
    }
    if (st.isFIFO()) {
      // A pipe (process substitution, mkfifo): read as it streams, as standard input is; it cannot be followed or re-read.
      await this.readStream(fh.createReadStream({ highWaterMark: CHUNK }), name);
      return undefined;
    }
    if (!st.isFile() && !st.isDirectory()) {
      // /dev/zero, /dev/urandom never end; a device or socket is no log file.
      await fh.close();
      const what = st.isCharacterDevice() ? 'a character device' : st.isBlockDevice() ? 'a block device' : 'a socket';
      throw new ReadError(`cannot read ${name}: not a regular file (${what})${st.isCharacterDevice() ? '; for the kernel ring buffer, use --kmsg' : ''}`);
    }
    const p = this.parser();
    const head = Buffer.alloc(64);
    let bytesRead: number;
    try {
      ({ bytesRead } = await fh.read(head, 0, 64, 0));
    } catch (e) {
      await fh.close();
      throw new ReadError(`cannot read ${name}: ${errnoText(e)}`);
    }
    if (bytesRead >= 2 && head[0] === 0x1f && head[1] === 0x8b) {
      await fh.close();
      await this.readGzip(path, name, p);
      return undefined; // a compressed file is a rotated one: nothing to follow
    }
    let onLine: OnLine;
    try {
      onLine = this.lineHandler(p, head.toString('latin1', 0, bytesRead), name);
    } catch (e) {
      await fh.close(); // refused (UTF-16): not left to the garbage collector
      throw e;
    }
    let split = new LineSplitter(onLine, (n) => tooLong(p.counts, name, n));
    const buf = Buffer.allocUnsafe(CHUNK);
    let pos = 0;
    const drain = async (h: FileHandle) => {
      for (;;) {
        let r;
        try {
          r = await h.read(buf, 0, CHUNK, pos);
        } catch (e) {
          throw new ReadError(`cannot read ${name}: ${errnoText(e)}`);
        }
        if (r.bytesRead === 0) return;
        pos += r.bytesRead;
        this.bytesRead += r.bytesRead;
        split.push(buf.toString('latin1', 0, r.bytesRead));
      }
    };
    try {
      await drain(fh);
    } catch (e) {
      await fh.close();
      throw e;
    }
    if (!this.opts.follow) {
      split.end();
      await fh.close();
      return undefined;
    }
    return async () => {
      const signal = this.opts.signal;
      try {
        while (!signal?.aborted) {
          await sleep(this.opts.pollMs ?? 500, signal);
          if (signal?.aborted) break;
          const cur = await fh.stat();
          const onDisk = await stat(path).catch(() => undefined);
          if (cur.size < pos) {
            // Truncated in place (copytruncate): start over.
            p.counts.rotations++;
            split.end();
            split = new LineSplitter(onLine, (n) => tooLong(p.counts, name, n));
            pos = 0;
          } else if (onDisk && (onDisk.ino !== cur.ino || onDisk.dev !== cur.dev)) {
            // Rotated by rename: finish the old file, then read the new one from its start.
            await drain(fh);
            split.end();
            await fh.close();
            fh = await open(path, 'r');
            p.counts.rotations++;
            split = new LineSplitter(onLine, (n) => tooLong(p.counts, name, n));
            pos = 0;
          }
          await drain(fh);
        }
      } finally {
        await fh.close().catch(() => {});
      }
    };
  }

  private async readGzip(path: string, name: string, p: KernelLineParser): Promise<void> {
    // Made from the first decompressed chunk (it decides the format), so each line goes straight to its parser.
    let split: LineSplitter | undefined;
    try {
      const raw = createReadStream(path, { highWaterMark: CHUNK });
      raw.on('data', (b) => (this.bytesRead += b.length));
      for await (const chunk of raw.pipe(createGunzip({ chunkSize: CHUNK }))) {
        const text = (chunk as Buffer).toString('latin1');
        split ??= new LineSplitter(this.lineHandler(p, text.slice(0, 64), name), (n) => tooLong(p.counts, name, n));
        split.push(text);
      }
    } catch (e) {
      if (e instanceof ReadError) throw e; // said already (a UTF-16 file inside)
      // A gzip file cut short (still being written, disk full) keeps what was readable.
      if (isGzipDamage(e)) {
        // The stream drops the output of the chunk that failed: after a good member followed by trailing garbage,
        // that was its last lines. Decompress its complete members again, on their own, and go on from there.
        const members = await gzipMembers(path);
        if (members?.length) {
          const text = members.toString('latin1');
          split ??= new LineSplitter(this.lineHandler(p, text.slice(0, 64), name), (n) => tooLong(p.counts, name, n));
          split.resumeFrom(text);
        }
        gzipDamage(p.counts, name, (split?.lineNo ?? 0) + 1, e as Error);
      } else throw new ReadError(`cannot read ${name}: ${errnoText(e)}`);
    }
    split?.end();
  }

  private async readJournal(): Promise<(() => Promise<void>) | undefined> {
    const x = this.opts.execer;
    if (!x) throw new ReadError('reading the journal needs an Execer (internal)');
    const p = this.parser();
    const args = ['-k', '-o', 'json', '--no-pager'];
    if (this.opts.since !== undefined) args.push(`--since=@${Math.floor(this.opts.since / 1000)}`);
    let n = 0;
    const onLine = (l: string) => this.emit(p.parseLine(l, 'journal', ++n));
    if (!this.opts.follow) {
      const r = await x.run('journalctl', args, { timeoutMs: 600_000 });
      if (r.code === 127) throw new ReadError('cannot read the journal: journalctl is not installed');
      if (r.code !== 0) throw new ReadError(`cannot read the journal: journalctl exited ${r.code}: ${r.stderr.trim().split('\n')[0] ?? ''}`);
      for (const l of r.stdout.split('\n')) if (l) onLine(l);
      return undefined;
    }
    return async () => {
      const child = x.start('journalctl', [...args, '--follow', '--no-tail']);
      const aborted = whenAborted(this.opts.signal);
      try {
        for (;;) {
          const next = await Promise.race([child.nextLine(), aborted]).catch((e: Error) => e);
          if (next === 'abort') break;
          if (next instanceof Error) {
            const r = await child.exited;
            if (r.code === 127) throw new ReadError('cannot read the journal: journalctl is not installed');
            if (r.code !== 0) throw new ReadError(`cannot read the journal: journalctl exited ${r.code}: ${r.stderr.trim().split('\n')[0] ?? ''}`);
            break;
          }
          onLine(next);
        }
      } finally {
        await child.stop();
      }
    };
  }

  private async readKmsg(path: string): Promise<(() => Promise<void>) | undefined> {
    let fh: FileHandle;
    try {
      fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (e) {
      const why = errnoText(e);
      throw new ReadError(`cannot read ${path}: ${why}${why === 'permission denied' ? ' (reading the kernel log needs root or CAP_SYSLOG)' : ''}`);
    }
    const p = this.parser();
    const split = new LineSplitter(
      // Lines starting with a space continue a record (KEY=value dictionary): not messages.
      (t, a, b, c, n) => {
        if (t.charCodeAt(a) === 32) return;
        this.emit(p.parseRange(t, a, b, c, path, n));
      },
      (n) => tooLong(p.counts, path, n),
    );
    const buf = Buffer.allocUnsafe(CHUNK);
    /** Reads what is there; false when nothing more is available now. */
    const drain = async (): Promise<void> => {
      for (;;) {
        let r;
        try {
          r = await fh.read(buf, 0, CHUNK, null);
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code === 'EAGAIN') return;
          // EPIPE: records were overwritten in the ring buffer before we read them; reading goes on.
          if (code === 'EPIPE') {
            p.counts.lost++;
            continue;
          }
          throw new ReadError(`cannot read ${path}: ${errnoText(e)}`);
        }
        if (r.bytesRead === 0) return;
        split.push(buf.toString('latin1', 0, r.bytesRead));
      }
    };
    try {
      await drain();
    } catch (e) {
      await fh.close();
      throw e;
    }
    if (!this.opts.follow) {
      split.end();
      await fh.close();
      return undefined;
    }
    return async () => {
      try {
        while (!this.opts.signal?.aborted) {
          await sleep(this.opts.pollMs ?? 500, this.opts.signal);
          await drain();
        }
      } finally {
        await fh.close().catch(() => {});
      }
    };
  }
}

/** Most a damaged gzip file is re-read into memory, compressed and decompressed (its complete members only). */
const MAX_GZIP_RECOVERY = 1 << 26;

/**
 * The complete members of a gzip file, decompressed one by one (RFC 1952
 * headers walked here; each deflate stream inflated raw, which stops at its
 * end): what a damaged file (trailing garbage, a cut last member) still
 * holds. undefined when the file is too big to re-read this way.
 */
async function gzipMembers(path: string): Promise<Buffer | undefined> {
  const buf = await readFile(path).catch(() => undefined);
  if (!buf || buf.length > MAX_GZIP_RECOVERY) return undefined;
  const out: Buffer[] = [];
  let size = 0;
  let pos = 0;
  while (pos + 18 <= buf.length && buf[pos] === 0x1f && buf[pos + 1] === 0x8b && buf[pos + 2] === 8) {
    const flags = buf[pos + 3]!;
    let at = pos + 10;
    if (flags & 4) at += 2 + buf.readUInt16LE(at);
    for (const bit of [8, 16]) if (flags & bit) at = buf.indexOf(0, at) + 1;
    if (flags & 2) at += 2;
    if (at <= pos || at > buf.length) break;
    let r: { buffer: Buffer; engine: { bytesWritten: number } };
    try {
      r = inflateRawSync(buf.subarray(at), { info: true, maxOutputLength: MAX_GZIP_RECOVERY - size }) as unknown as typeof r;
    } catch {
      break; // a cut or corrupt member: what came before it stands
    }
    out.push(r.buffer);
    size += r.buffer.length;
    pos = at + r.engine.bytesWritten + 8;
  }
  return Buffer.concat(out);
}

/** A gzip stream's error that means damaged data (cut short, corrupt), not an unreadable file. */
export function isGzipDamage(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return code === 'Z_BUF_ERROR' || code === 'Z_DATA_ERROR';
}

/** A damaged gzip tail: one malformed line, where the readable part ended. */
export function gzipDamage(c: ReadCounts, where: string, lineNo: number, e: Error): void {
  c.malformed++;
  if (c.problems.length < MAX_PROBLEMS) c.problems.push({ where, line: lineNo, reason: `gzip data ends early or is corrupt (${e.message})` });
}

/**
 * The bytes of a stream, decompressed when they start as gzip (1f 8b).
 * Damaged gzip data ends it: `onDamage` is told, what came before stands.
 */
async function* gunzipped(chunks: AsyncIterable<Buffer | string>, onDamage: (e: Error) => void): AsyncGenerator<Buffer | string> {
  const it = chunks[Symbol.asyncIterator]();
  const rest: AsyncIterable<Buffer | string> = { [Symbol.asyncIterator]: () => it };
  const first = await it.next();
  if (first.done) return;
  const b = first.value;
  if (typeof b === 'string' || b.length < 2 || b[0] !== 0x1f || b[1] !== 0x8b) {
    yield b;
    yield* rest;
    return;
  }
  const src = Readable.from(
    (async function* () {
      yield b;
      yield* rest;
    })(),
  );
  const gz = createGunzip({ chunkSize: CHUNK });
  src.on('error', (e) => gz.destroy(e));
  try {
    for await (const c of src.pipe(gz)) yield c as Buffer;
  } catch (e) {
    if (!isGzipDamage(e)) throw e;
    onDamage(e as Error);
  }
}

/**
 * UTF-16 text: a byte order mark, or ASCII in UTF-16 without one — one byte
 * of every pair NUL, the other hardly ever. (A log whose start is zero-filled,
 * as a crash or copytruncate leaves it, has NULs in both: it is read.)
 */
function looksUtf16(head: string): boolean {
  if (/^(\xff\xfe|\xfe\xff)/.test(head)) return true;
  if (head.length < 8) return false;
  const nuls = [0, 0];
  for (let i = 0; i < head.length; i++) if (head.charCodeAt(i) === 0) nuls[i & 1]!++;
  const pairs = head.length >> 1;
  return (nuls[0]! >= pairs * 0.75 && nuls[1]! <= pairs * 0.1) || (nuls[1]! >= pairs * 0.75 && nuls[0]! <= pairs * 0.1);
}

/** An over-long line: one line, one malformed (its rest is skipped, not counted again). */
export function tooLong(c: ReadCounts, where: string, lineNo: number): void {
  c.lines++;
  c.malformed++;
  if (c.problems.length < MAX_PROBLEMS) c.problems.push({ where, line: lineNo, reason: `line longer than ${MAX_LINE} bytes (not a log file?)` });
}

/** Read sources to their end (or, with `follow`, until the signal aborts); events go to `sink`. */
export function readLogs(sources: readonly LogSource[], opts: ReadOptions, sink: EventSink): Promise<ReadCounts> {
  return new LogReader(sources, opts, sink).run();
}
