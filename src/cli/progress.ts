/**
 * Progress on standard error, one line redrawn in place on a terminal and
 * nothing when standard error is not a terminal or with -q:
 *
 * - the log commands (stats, learn, replay): bytes read of the total when
 *   the sources are files, lines and lines a second (startProgress). The
 *   reader is never called back per line or chunk: a timer samples its
 *   counters every 250 ms, so the hot path only adds a chunk's size to a
 *   number (bench/logs.mjs measured no change, BENCHMARKS.md "Memory and
 *   progress");
 * - compile, plan, apply and status: the stage running now (withStages),
 *   said through `io.stage` by the pipeline itself (src/index.ts,
 *   kernel/lifecycle.ts, kernel/status.ts), and drawn only once the command
 *   has run STAGES_AFTER_MS, so a small policy shows nothing.
 */
import { statSync } from 'node:fs';
import type { Ir } from '../ir/types.js';
import type { LogSource } from '../logs/read.js';
import type { Io } from './io.js';

export interface ProgressSample {
  bytes: number;
  lines: number;
}

export interface Progress {
  /** Stop drawing and clear the line (call before printing the report). */
  stop(): void;
}

const NONE: Progress = { stop: () => {} };
export const PROGRESS_EVERY_MS = 250;

/** The sources' total size in bytes, when every one is a file (a .gz counts compressed, as it is read); else undefined. */
export function totalBytes(sources: readonly LogSource[]): number | undefined {
  let total = 0;
  for (const s of sources) {
    if (s.kind !== 'file') return undefined;
    try {
      total += statSync(s.path).size;
    } catch {
      return undefined;
    }
  }
  return total;
}

/**
 * Draw `sample()` every PROGRESS_EVERY_MS on standard error while the read
 * runs; nothing when `on` is false (not a terminal, -q).
 */
export function startProgress(io: Io, on: boolean, label: string, total: number | undefined, sample: () => ProgressSample, now: () => number = Date.now): Progress {
  if (!on) return NONE;
  const t0 = now();
  let drawn = false;
  const draw = () => {
    const { bytes, lines } = sample();
    const secs = Math.max(0.001, (now() - t0) / 1000);
    const rate = `${fmt(Math.round(lines / secs))} lines/s`;
    const of = total ? ` ${bar(bytes / total)} ${Math.min(100, Math.floor((bytes / total) * 100))}% ${mb(bytes)}/${mb(total)} MB,` : '';
    io.stderr(`\r\x1b[K${label}:${of} ${fmt(lines)} lines, ${rate}`);
    drawn = true;
  };
  const timer = setInterval(draw, PROGRESS_EVERY_MS);
  timer.unref?.();
  return {
    stop: () => {
      clearInterval(timer);
      if (drawn) io.stderr('\r\x1b[K');
    },
  };
}

const fmt = (n: number) => n.toLocaleString('en-US');
const mb = (b: number) => (b / 1e6).toFixed(b < 1e7 ? 1 : 0);

function bar(f: number): string {
  const w = 20;
  const n = Math.max(0, Math.min(w, Math.round(f * w)));
  return `[${'#'.repeat(n)}${'.'.repeat(w - n)}]`;
}

/** What tests replace in the stage lines: the wait before the first, and the clock. */
export interface StageSeams {
  /** Draw a stage only once the command has run this long (default STAGES_AFTER_MS; tests give 0). */
  stagesAfterMs?: number;
  /** Milliseconds now (default Date.now). */
  clock?: () => number;
}

/** A command quicker than this shows no stage at all: small policies look as they always did. */
export const STAGES_AFTER_MS = 500;
/** A stage running this long shows its seconds (redrawn by the timer while it waits on nft, iptables or the lock). */
const SECONDS_AFTER_MS = 1000;

/**
 * Run `command` with an Io whose `stage(what)` says what runs now, as one
 * line on standard error (`egress: loading with nft -f …`, its seconds once
 * it has taken one), when `on` (a terminal, no -q). Every write through that
 * Io clears the line first, the first to standard output stops the stages
 * for good (the report has begun), and the line is cleared when `command`
 * ends or throws: a stage line never shares a line with other text.
 */
export async function withStages<T>(io: Io, on: boolean, seams: StageSeams, command: (io: Io) => Promise<T>): Promise<T> {
  if (!on) return command(io);
  const now = seams.clock ?? Date.now;
  const after = seams.stagesAfterMs ?? STAGES_AFTER_MS;
  const t0 = now();
  let what: string | undefined;
  let since = t0;
  let shown = '';
  let stopped = false;
  const draw = () => {
    const t = now();
    if (stopped || what === undefined || t - t0 < after) return;
    const secs = t - since >= SECONDS_AFTER_MS ? ` ${((t - since) / 1000).toFixed(1)} s` : '';
    const room = Math.max(10, (io.stderrColumns ?? 80) - 1 - 'egress:  …'.length - secs.length);
    const line = `egress: ${what.length > room ? what.slice(0, room).trimEnd() : what} …${secs}`;
    if (line === shown) return;
    io.stderr(`\r\x1b[K${line}`);
    shown = line;
  };
  const clear = () => {
    if (shown) io.stderr('\r\x1b[K');
    shown = '';
  };
  const timer = setInterval(draw, PROGRESS_EVERY_MS);
  timer.unref?.();
  const stop = () => {
    stopped = true;
    clearInterval(timer);
    clear();
  };
  const staged: Io = {
    ...io,
    stdout: (s) => {
      stop();
      io.stdout(s);
    },
    stderr: (s) => {
      clear();
      io.stderr(s);
    },
    stage: (w) => {
      what = w;
      since = now();
      draw();
    },
  };
  try {
    return await command(staged);
  } finally {
    stop();
  }
}

/** Whether to draw stage lines: standard error is a terminal (Io.stderrTty) and not -q. */
export function stagesOn(io: Io, quiet?: boolean): boolean {
  return !!io.stderrTty && !quiet;
}

/** The stage of emitting `ir` for `target`, with its size: what makes a compile slow is the destinations. */
export function compiling(ir: Ir, target: string): string {
  if (target === 'ir') return 'printing the IR';
  const n = [...ir.rules, ...(ir.forward?.rules ?? [])].reduce((sum, r) => sum + (r.dst?.length ?? 0), 0);
  return `compiling the ${target} ruleset (${fmt(n)} destination${n === 1 ? '' : 's'})`;
}
