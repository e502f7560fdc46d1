/**
 * `stats` over big log files on every core: the files are cut into byte
 * ranges at line boundaries, one worker thread per range parses, dedupes and
 * aggregates its part, and the parts are merged. The shell pipeline it is
 * measured against (grep | awk | sort | uniq) runs on several cores too.
 *
 * Exactness at the cuts: a connection attempt whose retransmissions straddle
 * a cut must still count once. So each part after the first holds back its
 * "head", the events within the dedupe window of its first time, and feeds
 * them to its deduper without counting them; it posts them back with the
 * tuples its own last window saw (its "tail"). The main thread then counts
 * each head against the tail of the part before it. With logs in time order
 * the result equals a sequential read, which the tests check.
 *
 * Gzip files cannot be cut: each is one part. Windows Firewall logs, stdin,
 * the journal, /dev/kmsg and --follow are read sequentially (logs/read.ts).
 */
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { constants as zlibConstants, gunzipSync } from 'node:zlib';
import { StatsBuilder, type BuilderState } from './aggregate.js';
import { Deduper, DEDUPE_WINDOW_MS } from './dedupe.js';
import { addCounts, emptyCounts, type LogEvent, type ReadCounts } from '../logs/event.js';
import { KernelLineParser, type ParseOptions } from '../logs/parse-kernel.js';
import { looksLikePfirewall } from '../logs/pfirewall.js';
import { CHUNK, LineSplitter, LogReader, ReadError, tooLong, type LogSource } from '../logs/read.js';

/** One part: a byte range of a plain file, or a whole gzip file. */
export interface Part {
  path: string;
  name: string;
  start: number;
  end: number;
  gzip: boolean;
}

export interface PartResult {
  state: BuilderState;
  counts: ReadCounts;
  /** Events within the dedupe window of the part's first time, not yet counted (empty for the first part). */
  head: LogEvent[];
  /** (tuple hashes, ms) seen in the part's last window (Deduper.exportSince). */
  tail: [number, number, number][];
  /** Prefixes of other LOG rules' lines (KernelLineParser.otherPrefixes). */
  otherPrefixes: [string, number][];
}

/** Progress of a part, as it is read: bytes and lines since the last call. */
export type PartProgress = (bytes: number, lines: number) => void;
/** How much a part reads between two progress reports. */
const REPORT_BYTES = 8 << 20;


/** Most events a part holds back (lines without a time until one with a time, or a minute of a very busy log): memory stays bounded. */
const MAX_HEAD = 100_000;

/**
 * Parse, dedupe and aggregate one part (in a worker, or in-process in tests).
 * Lines are split as the sequential reader splits them (an over-long line is
 * one malformed line), and a gzip part is read by the sequential reader
 * itself: streamed, never decompressed whole (a gzip bomb beside a big log
 * took gigabytes), a damaged tail counted, not a failure.
 */
export async function processPart(part: Part, opts: ParseOptions, holdHead: boolean, windowMs = DEDUPE_WINDOW_MS, progress?: PartProgress): Promise<PartResult> {
  const dedupe = new Deduper(windowMs);
  const builder = new StatsBuilder();
  const head: LogEvent[] = [];
  let headUntil: number | undefined;
  // The head is the part's start only: it closes at the first event past its window. (A later event with an
  // earlier time, after the log's time jumped back, is counted here: held, every event of a part that jumped
  // back a day was kept in memory and posted to the main thread.)
  let holding = holdHead;
  let lastTime = -Infinity;
  const onEvent = (e: LogEvent) => {
    if (e.time !== undefined && e.time > lastTime) lastTime = e.time;
    if (holding) {
      if (headUntil === undefined && e.time !== undefined) headUntil = e.time + windowMs;
      if ((headUntil === undefined || (e.time ?? -Infinity) <= headUntil) && head.length < MAX_HEAD) {
        dedupe.isNew(e);
        head.push(e);
        return;
      }
      holding = false;
    }
    builder.add(e, dedupe.isNew(e));
  };
  let counts: ReadCounts;
  let prefixes: Map<string, number>;
  let told = { bytes: 0, lines: 0 };
  const tell = (bytes: number, lines: number) => {
    if (!progress || bytes - told.bytes < REPORT_BYTES) return;
    progress(bytes - told.bytes, lines - told.lines);
    told = { bytes, lines };
  };
  if (part.gzip) {
    const reader = new LogReader([{ kind: 'file', path: part.path, name: part.name }], opts, (e) => {
      onEvent(e);
      tell(reader.bytesRead, reader.counts.lines);
    });
    counts = await reader.run();
    prefixes = reader.otherPrefixes();
    progress?.(part.end - part.start - told.bytes, counts.lines - told.lines);
  } else {
    const parser = new KernelLineParser(opts);
    counts = parser.counts;
    prefixes = parser.otherPrefixes;
    const split = new LineSplitter(
      (s, a, b, chunk, lineNo) => {
        const e = parser.parseRange(s, a, b, chunk, part.name, lineNo);
        if (e) onEvent(e);
      },
      (lineNo) => tooLong(counts, part.name, lineNo),
    );
    const fd = openSync(part.path, 'r');
    try {
      const buf = Buffer.allocUnsafe(CHUNK);
      for (let pos = part.start; pos < part.end; ) {
        const n = readSync(fd, buf, 0, Math.min(CHUNK, part.end - pos), pos);
        if (n === 0) break;
        pos += n;
        split.push(buf.toString('latin1', 0, n));
        tell(pos - part.start, counts.lines);
      }
    } finally {
      closeSync(fd);
    }
    split.end();
    progress?.(part.end - part.start - told.bytes, counts.lines - told.lines);
  }
  return { state: builder.exportState(), counts, head, tail: dedupe.exportSince(lastTime - windowMs), otherPrefixes: [...prefixes] };
}

/** The byte just after the first newline at or after `at` (the file's size if there is none). */
function lineStartAfter(fd: number, at: number, size: number): number {
  const buf = Buffer.allocUnsafe(64 * 1024);
  for (let pos = at; pos < size; ) {
    const n = readSync(fd, buf, 0, buf.length, pos);
    if (n === 0) break;
    const i = buf.subarray(0, n).indexOf(10);
    if (i >= 0) return pos + i + 1;
    pos += n;
  }
  return size;
}

/** Cut files (in reading order) into about `n` parts of similar size, at line starts. */
export function planParts(files: readonly { path: string; name: string }[], n: number): Part[] {
  const sizes = files.map((f) => statSync(f.path).size);
  const total = sizes.reduce((a, b) => a + b, 0);
  const target = Math.max(1, Math.ceil(total / n));
  const parts: Part[] = [];
  files.forEach((f, k) => {
    const size = sizes[k]!;
    const fd = openSync(f.path, 'r');
    try {
      const magic = Buffer.alloc(2);
      readSync(fd, magic, 0, 2, 0);
      if (magic[0] === 0x1f && magic[1] === 0x8b) {
        parts.push({ path: f.path, name: f.name, start: 0, end: size, gzip: true });
        return;
      }
      let start = 0;
      while (start < size) {
        const end = size - start <= target * 1.5 ? size : lineStartAfter(fd, start + target, size);
        parts.push({ path: f.path, name: f.name, start, end, gzip: false });
        start = end;
      }
    } finally {
      closeSync(fd);
    }
  });
  return parts;
}

/** Merge part results in order: each head is counted against the previous part's tail. */
export function mergeParts(results: readonly PartResult[], parts: readonly Part[], windowMs = DEDUPE_WINDOW_MS): { builder: StatsBuilder; counts: ReadCounts; otherPrefixes: Map<string, number> } {
  const builder = new StatsBuilder();
  const counts = emptyCounts();
  const otherPrefixes = new Map<string, number>();
  for (const r of results) for (const [p, n] of r.otherPrefixes) otherPrefixes.set(p, (otherPrefixes.get(p) ?? 0) + n);
  let lineOffset = 0;
  results.forEach((r, k) => {
    // Line numbers (of malformed lines) count from each file's start.
    if (k > 0 && parts[k]!.path !== parts[k - 1]!.path) lineOffset = 0;
    if (k > 0 && r.head.length) {
      const d = new Deduper(windowMs);
      d.seed(results[k - 1]!.tail);
      for (const e of r.head) builder.add(e, d.isNew(e));
    }
    builder.merge(r.state);
    addCounts(counts, { ...r.counts, problems: r.counts.problems.map((p) => ({ ...p, line: p.line + lineOffset })) });
    lineOffset += r.counts.lines;
  });
  return { builder, counts, otherPrefixes };
}

/** The worker script next to this module (compiled JS only: under a TypeScript test runner there is none). */
export function workerScript(): string | undefined {
  const p = fileURLToPath(new URL('./stats-worker.js', import.meta.url));
  return existsSync(p) ? p : undefined;
}

export const PARALLEL_MIN_BYTES = 32 * 1024 * 1024;

/**
 * How many workers to use for `bytes` of logs: none below PARALLEL_MIN_BYTES,
 * else one per core, at most 8. Measured on 2 cores (BENCHMARKS.md, "Log reading"): two
 * threads cut the wall time by about a third when the cores are free, and add
 * about a fifth when other work keeps them busy (each worker also loads and
 * warms up its own parser); EGRESS_STATS_WORKERS=1 reads in one thread.
 */
export function workersFor(bytes: number, minBytes = PARALLEL_MIN_BYTES, cores = availableParallelism()): number {
  if (bytes < minBytes) return 1;
  return Math.max(1, Math.min(8, cores, Math.floor(bytes / (minBytes / 2))));
}

export interface ParallelPlan {
  /** In reading order (oldest first). */
  files: { path: string; name: string }[];
  workers: number;
  /** The compiled worker script (workerScript()). */
  script: string;
}

/**
 * Whether to read `sources` in parallel, and how: only plain kernel log files
 * (gzip included; a file the sequential reader would read as a Windows
 * Firewall log, by `looksLikePfirewall`, not), big enough to be worth the
 * threads (or `forced` says how many; 1 = read in order in this thread), and
 * only when the compiled worker script exists (`script`: tests pass their
 * own). Undefined: read in order.
 */
export async function parallelPlan(sources: readonly LogSource[], forced?: number, script = workerScript()): Promise<ParallelPlan | undefined> {
  if (!script || !sources.length || sources.some((s) => s.kind !== 'file')) return undefined;
  const files = sources as Extract<LogSource, { kind: 'file' }>[];
  let bytes = 0;
  let plain = 0;
  const withTime: { path: string; name: string; mtime: number }[] = [];
  for (const f of files) {
    let st;
    try {
      st = await stat(f.path);
    } catch {
      return undefined; // let the sequential reader report it
    }
    if (!st.isFile()) return undefined;
    const sniffed = await textHead(f.path);
    if (sniffed === undefined) return undefined;
    const { head, gzip } = sniffed;
    // pfirewall.log and UTF-16 files take the sequential reader (which refuses UTF-16, saying so).
    if (looksLikePfirewall(head) || head.includes('\0')) return undefined;
    if (!gzip) plain++;
    bytes += st.size;
    withTime.push({ path: f.path, name: f.name, mtime: st.mtimeMs });
  }
  const workers = forced ?? workersFor(bytes);
  // A gzip file cannot be cut: one alone is one part, read here rather than in a thread that would only add its own heap.
  if (workers < 2 || (files.length === 1 && !plain)) return undefined;
  withTime.sort((a, b) => a.mtime - b.mtime);
  return { files: withTime.map(({ path, name }) => ({ path, name })), workers, script };
}

/**
 * A file's first 64 bytes as the sequential reader sniffs them (latin1;
 * decompressed when the file is gzip, so a rotated pfirewall.log.gz is still
 * one). Undefined when a gzip file's start does not decompress: the
 * sequential reader reports that.
 */
async function textHead(path: string): Promise<{ head: string; gzip: boolean } | undefined> {
  const fh = await open(path, 'r');
  let raw: Buffer;
  try {
    // 4 KiB: enough for 64 bytes of text, and no more than 4 MiB however hard it was compressed.
    const buf = Buffer.alloc(4096);
    raw = buf.subarray(0, (await fh.read(buf, 0, buf.length, 0)).bytesRead);
  } finally {
    await fh.close();
  }
  const gzip = raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b;
  if (gzip) {
    try {
      // Only a prefix of the stream: flush what it decodes to instead of failing at its cut end.
      raw = gunzipSync(raw, { finishFlush: zlibConstants.Z_SYNC_FLUSH });
    } catch {
      return undefined;
    }
  }
  return { head: raw.toString('latin1', 0, Math.min(64, raw.length)), gzip };
}

/** Read plain/gzip kernel log files with `workers` threads; the same answer as a sequential read. */
export async function statsParallel(files: readonly { path: string; name: string }[], opts: ParseOptions, workers: number, script: string, progress?: PartProgress): Promise<ReturnType<typeof mergeParts>> {
  const parts = planParts(files, workers);
  // Only what parsing needs crosses to the workers (a ReadOptions also holds a signal and an Execer, which cannot).
  const parse: ParseOptions = { now: opts.now, ...(opts.bootTimeMs !== undefined ? { bootTimeMs: opts.bootTimeMs } : {}), ...(opts.since !== undefined ? { since: opts.since } : {}), ...(opts.prefixes ? { prefixes: opts.prefixes } : {}) };
  const readPart = (k: number) =>
    new Promise<PartResult>((resolve, reject) => {
      const part = parts[k]!;
      const w = new Worker(script, { workerData: { part, opts: parse, holdHead: k > 0, progress: !!progress } });
      // A part that cannot be read is posted as its message (a ReadError does not cross threads as one); progress comes as [bytes, lines].
      w.on('message', (r: PartResult | { unreadable: string } | { progress: [number, number] }) => {
        if ('progress' in r) progress?.(...r.progress);
        else if ('unreadable' in r) reject(new ReadError(r.unreadable));
        else resolve(r);
      });
      w.once('error', (e) => reject(e instanceof ReadError ? e : new ReadError(`cannot read ${part.name}: ${e.message}`)));
      w.once('exit', (code) => {
        if (code !== 0) reject(new ReadError(`cannot read ${part.name}: worker exited ${code}`));
      });
    });
  // At most `workers` threads at once: each gzip file is a part of its own, and kern.log.2.gz … kern.log.9.gz
  // were eight threads, eight heaps, at the same time.
  const results: PartResult[] = new Array(parts.length);
  let next = 0;
  const lane = async () => {
    while (next < parts.length) {
      const k = next++;
      results[k] = await readPart(k);
    }
  };
  await Promise.all(Array.from({ length: Math.min(workers, parts.length) }, lane));
  return mergeParts(results, parts);
}
