/**
 * Policy changes from the apply history, and the denial rate before and
 * after each: the seed's "error rate after a policy change". A change after
 * which denials jumped is flagged: it is the first place to look when
 * something broke right after an apply.
 *
 * The history is `$EGRESS_STATE_DIR/history.jsonl`, written by the apply life
 * cycle and read with its own tolerant reader (kernel/history.ts): a line
 * that is not an entry is skipped and counted.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { HISTORY_FILE, readHistory as readKernelHistory, REFRESH_UNCHANGED, type HistoryAction } from '../kernel/history.js';
import { countBetween, type Stats } from './aggregate.js';

export interface HistoryEntry {
  /** ms since the epoch. */
  time: number;
  action: HistoryAction;
  outcome: 'ok' | 'failed' | 'pending';
  user?: string;
  uid?: number;
  policyFile?: string;
  policyHash?: string;
  backend?: string;
  mode?: string;
  message?: string;
}

export interface History {
  path: string;
  entries: HistoryEntry[];
  /** Lines that were not history entries. */
  skipped: number;
  /** The file does not exist (no apply has been recorded on this host). */
  missing: boolean;
}

export function readHistory(dir: string): History {
  const path = join(dir, HISTORY_FILE);
  if (!existsSync(path)) return { path, entries: [], skipped: 0, missing: true };
  const h = readKernelHistory(dir);
  const entries = h.entries.map((e) => ({ ...e, time: Date.parse(e.time) })).sort((a, b) => a.time - b.time);
  return { path, entries, skipped: h.skipped, missing: false };
}

/**
 * Entries that changed what the kernel does: a confirm keeps what is live, a
 * failed apply changed nothing, and neither did a refresh round that found
 * no address changed (`refresh --watch` records one per round, as often as
 * every 30 s: counted as changes they cut every window below the minimum).
 */
export function isRulesetChange(e: HistoryEntry): boolean {
  return e.outcome !== 'failed' && e.action !== 'confirm' && !(e.action === 'refresh' && e.message === REFRESH_UNCHANGED);
}

export interface RateWindow {
  /** Window start and end (ms). */
  from: number;
  to: number;
  connections: number;
  perHour: number;
}

export interface ChangeStat {
  entry: HistoryEntry;
  before?: RateWindow;
  after?: RateWindow;
  /** Denials at least doubled after the change (and at least MIN_JUMP connections followed it). */
  jump: boolean;
  /** Why there is no rate on one side. */
  note?: string;
}

export const CHANGE_WINDOW_MS = 3_600_000;
/** Below this many connections after a change, a doubling is noise. */
export const MIN_JUMP = 10;
/** A window cut shorter than this by a neighbouring change gives no rate. */
const MIN_WINDOW_MS = 5 * 60_000;

/**
 * Rates in the hour before and after each change (cut at neighbouring
 * changes and at the edges of what the logs cover).
 */
export function analyzeChanges(
  entries: readonly HistoryEntry[],
  minutes: ReadonlyMap<number, number>,
  coverage: { from: number; to: number } | undefined,
  windowMs = CHANGE_WINDOW_MS,
): ChangeStat[] {
  const changes = entries.filter(isRulesetChange);
  return changes.map((entry, i) => {
    const prev = changes[i - 1]?.time ?? -Infinity;
    const next = changes[i + 1]?.time ?? Infinity;
    const out: ChangeStat = { entry, jump: false };
    if (!coverage) return { ...out, note: 'no log data' };
    const window = (from: number, to: number): RateWindow | undefined => {
      const a = Math.max(from, coverage.from);
      const b = Math.min(to, coverage.to);
      if (b - a < MIN_WINDOW_MS) return undefined;
      const n = countBetween(minutes, a, b);
      return { from: a, to: b, connections: n, perHour: (n * 3_600_000) / (b - a) };
    };
    const before = window(Math.max(entry.time - windowMs, prev), entry.time);
    const after = window(entry.time, Math.min(entry.time + windowMs, next));
    if (before) out.before = before;
    if (after) out.after = after;
    if (!before || !after) out.note = entry.time < coverage.from || entry.time > coverage.to ? 'outside the logs read' : 'too close to another change or to the edge of the logs';
    if (before && after) out.jump = after.connections >= MIN_JUMP && after.perHour >= 2 * before.perHour;
    return out;
  });
}

/** What the logs read cover, for analyzeChanges: from the first event (or --since) to the last event (or now, for live sources). */
export function coverage(s: Stats, liveUntil: number | undefined, since: number | undefined): { from: number; to: number } | undefined {
  const from = since ?? s.first;
  const to = liveUntil ?? s.last;
  return from !== undefined && to !== undefined && to > from ? { from, to } : undefined;
}
