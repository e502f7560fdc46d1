/**
 * Progress of the log commands (stats, learn, replay) on standard error:
 * one line redrawn in place on a terminal — bytes read of the total when
 * the sources are files, lines and lines a second — and nothing when
 * standard error is not a terminal or with -q.
 *
 * The reader is never called back per line or chunk: a timer samples its
 * counters every 250 ms, so the hot path only adds a chunk's size to a
 * number (bench/logs.mjs measured no change, BENCHMARKS.md "Memory and
 * progress").
 */
import { statSync } from 'node:fs';
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
