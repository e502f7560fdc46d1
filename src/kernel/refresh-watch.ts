/**
 * What a running `refresh --watch` plans next: `$EGRESS_STATE_DIR/refresh-watch.json`,
 * rewritten (atomically) after each round, so `status` can say when the next
 * round runs and which names it looks up. The schedule itself lives in the
 * watching process (resolve/schedule.ts); this file is only its report, and
 * worth nothing once that process is gone (status checks its pid).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from './atomic.js';

export const REFRESH_WATCH_FILE = 'refresh-watch.json';

export interface RefreshWatch {
  pid: number;
  /** ISO-8601: when the round that wrote this ended. */
  at: string;
  /** ISO-8601: when the next round runs. */
  next: string;
  /** The names due at `next`. */
  names: string[];
}

/** Best effort: a watch that cannot write its report keeps refreshing. */
export function writeRefreshWatch(stateDir: string, w: RefreshWatch): void {
  try {
    writeFileAtomic(join(stateDir, REFRESH_WATCH_FILE), JSON.stringify(w) + '\n', 0o644);
  } catch {
    /* status then says no watch is known */
  }
}

/** The report of the last watch, or undefined (none, or not a report). */
export function readRefreshWatch(stateDir: string): RefreshWatch | undefined {
  try {
    const v = JSON.parse(readFileSync(join(stateDir, REFRESH_WATCH_FILE), 'utf8')) as Partial<RefreshWatch>;
    if (!Number.isInteger(v.pid) || typeof v.at !== 'string' || typeof v.next !== 'string' || !Array.isArray(v.names) || Number.isNaN(Date.parse(v.next))) return undefined;
    return { pid: v.pid!, at: v.at, next: v.next, names: v.names.filter((n): n is string => typeof n === 'string') };
  } catch {
    return undefined;
  }
}
