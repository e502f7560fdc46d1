/**
 * The apply history: `$EGRESS_STATE_DIR/history.jsonl`, one JSON object per
 * line, appended by every life-cycle command. `egress stats` reads it to
 * show the denial rate before and after each change, so this format is a
 * contract: add optional fields if needed, never rename or remove one.
 */
import { appendFileSync, closeSync, fsyncSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { errnoText } from '../diag/errno.js';
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

/** Append one entry (one line, written with a single write and fsynced). */
export function appendHistory(stateDir: string, e: HistoryEntry): void {
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
  appendFileSync(path, JSON.stringify(ordered) + '\n', { mode: 0o644 });
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
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
