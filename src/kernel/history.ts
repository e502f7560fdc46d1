/**
 * The apply history: `$EGRESS_STATE_DIR/history.jsonl`, one JSON object per
 * line, appended by every life-cycle command. `egress stats` reads it to
 * show the denial rate before and after each change, so this format is a
 * contract: add optional fields if needed, never rename or remove one.
 *
 * It does not grow forever: once it holds more than HISTORY_MAX_LINES lines,
 * the append that would pass that rewrites it (kernel/jsonl.ts: temporary
 * file and rename, under the state lock every caller holds) with the newest
 * HISTORY_KEEP_REFRESH `refresh` entries and the newest HISTORY_KEEP_OTHERS
 * others. Refresh has its own share because `refresh --watch` records a
 * round as often as every 30 s; an apply, confirm, rollback or remove is not
 * pushed out by them. Nothing else reads further back than that: `status`
 * wants the last entry, `stats` the changes its logs cover; rollback restores
 * previous.json, not the history.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { errnoText } from '../diag/errno.js';
import { appendLine, rewriteLines, type RewriteSeam } from './jsonl.js';
import { StateError } from './state.js';

export type HistoryAction = 'apply' | 'confirm' | 'rollback' | 'auto-rollback' | 'remove' | 'refresh';
export type HistoryOutcome = 'ok' | 'failed' | 'pending';

export interface HistoryEntry {
  /** ISO-8601, UTC. */
  time: string;
  action: HistoryAction;
  /** Login name of whoever ran the command (SUDO_USER when run through sudo). */
  user: string;
  uid: number;
  /** Absolute path of the policy file. */
  policyFile: string;
  /** `sha256:` + hex digest of the policy file's bytes. */
  policyHash: string;
  backend: 'nft' | 'iptables';
  mode: 'enforce' | 'audit';
  outcome: HistoryOutcome;
  message?: string;
}

export const HISTORY_FILE = 'history.jsonl';

const ACTIONS: readonly string[] = ['apply', 'confirm', 'rollback', 'auto-rollback', 'remove', 'refresh'];
const OUTCOMES: readonly string[] = ['ok', 'failed', 'pending'];

/** `refresh` entries kept when the history is cut back: at the 30 s floor of `refresh --watch`, 41 hours of rounds; at a 5-minute TTL, 17 days. */
export const HISTORY_KEEP_REFRESH = 5000;
/** Entries of every other action kept when the history is cut back: years of applies and confirms (about 1.5 MB). */
export const HISTORY_KEEP_OTHERS = 5000;
/** The most lines history.jsonl holds; the append that would pass it cuts the file back to the two shares above. */
export const HISTORY_MAX_LINES = 11_000;

/**
 * Append one entry (one line, written with a single write and fsynced); past
 * HISTORY_MAX_LINES, rewrite the file with what is kept and this entry
 * instead. The caller holds the state lock.
 */
export function appendHistory(stateDir: string, e: HistoryEntry, seam?: RewriteSeam): void {
  const ordered: HistoryEntry = {
    time: e.time,
    action: e.action,
    user: e.user,
    uid: e.uid,
    policyFile: e.policyFile,
    policyHash: e.policyHash,
    backend: e.backend,
    mode: e.mode,
    outcome: e.outcome,
    ...(e.message !== undefined ? { message: e.message } : {}),
  };
  const path = join(stateDir, HISTORY_FILE);
  const line = JSON.stringify(ordered);
  const old = readOrEmpty(path);
  if (lineCount(old) < HISTORY_MAX_LINES) appendLine(path, line, 0o644);
  else rewriteLines(path, keptHistory([...old.split('\n'), line]), 0o644, seam);
}

/** The history lines (oldest first) a cut keeps, in order: the newest HISTORY_KEEP_REFRESH refresh entries and the newest HISTORY_KEEP_OTHERS others; lines that are no entry go. */
export function keptHistory(lines: readonly string[]): string[] {
  const kept: string[] = [];
  let refresh = 0;
  let others = 0;
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i]!;
    if (!line.trim()) continue;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      continue;
    }
    if (!isHistoryEntry(v)) continue;
    if (v.action === 'refresh' ? refresh++ < HISTORY_KEEP_REFRESH : others++ < HISTORY_KEEP_OTHERS) kept.push(line);
  }
  return kept.reverse();
}

function lineCount(text: string): number {
  let n = 0;
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) n++;
  return text.length && !text.endsWith('\n') ? n + 1 : n;
}

function readOrEmpty(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw e;
  }
}

/** Whether a parsed line is a well-formed entry. */
export function isHistoryEntry(v: unknown): v is HistoryEntry {
  if (!v || typeof v !== 'object') return false;
  const o = v as Record<string, unknown>;
  return (
    typeof o.time === 'string' &&
    !Number.isNaN(Date.parse(o.time)) &&
    typeof o.action === 'string' &&
    ACTIONS.includes(o.action) &&
    typeof o.user === 'string' &&
    typeof o.uid === 'number' &&
    typeof o.policyFile === 'string' &&
    typeof o.policyHash === 'string' &&
    (o.backend === 'nft' || o.backend === 'iptables') &&
    (o.mode === 'enforce' || o.mode === 'audit') &&
    typeof o.outcome === 'string' &&
    OUTCOMES.includes(o.outcome) &&
    (o.message === undefined || typeof o.message === 'string')
  );
}

/**
 * Parse history text. Lines that are not well-formed entries (a torn last
 * line after a crash, a hand edit) are skipped and counted, never fatal.
 */
export function parseHistory(text: string): { entries: HistoryEntry[]; skipped: number } {
  const entries: HistoryEntry[] = [];
  let skipped = 0;
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const v: unknown = JSON.parse(line);
      if (isHistoryEntry(v)) entries.push(v);
      else skipped++;
    } catch {
      skipped++;
    }
  }
  return { entries, skipped };
}

/** Read the history of a state directory; a missing file is an empty history. */
export function readHistory(stateDir: string): { entries: HistoryEntry[]; skipped: number } {
  let text: string;
  try {
    text = readFileSync(join(stateDir, HISTORY_FILE), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { entries: [], skipped: 0 };
    throw new StateError(`cannot read ${join(stateDir, HISTORY_FILE)}: ${errnoText(e)}`);
  }
  return parseHistory(text);
}

/** The message of a refresh round that changed no address (kernel/lifecycle.ts): recorded, but no change of what the kernel does. */
export const REFRESH_UNCHANGED = 'no address changed';
