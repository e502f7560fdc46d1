/** history.jsonl stays bounded: past HISTORY_MAX_LINES an append cuts it back atomically, keeping the newest of each share. */
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { tempDir } from '../../test/helpers.js';
import { appendHistory, HISTORY_FILE, HISTORY_KEEP_OTHERS, HISTORY_KEEP_REFRESH, HISTORY_MAX_LINES, readHistory, type HistoryEntry } from './history.js';
import { leftovers } from './jsonl.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const entry = (i: number, action: HistoryEntry['action']): HistoryEntry => ({
  time: new Date(T0 + i * 30_000).toISOString(),
  action,
  user: 'root',
  uid: 0,
  policyFile: '/etc/egress/policy.yaml',
  policyHash: 'sha256:ab',
  backend: 'nft',
  mode: 'enforce',
  outcome: 'ok',
  message: `#${i}`,
});

/** A history of `n` entries: an apply every 10th, refresh rounds between. */
function history(d: string, n: number): void {
  const lines = [];
  for (let i = 0; i < n; i++) lines.push(JSON.stringify(entry(i, i % 10 ? 'refresh' : 'apply')));
  writeFileSync(join(d, HISTORY_FILE), lines.join('\n') + '\n');
}

const fileLines = (d: string) => readFileSync(join(d, HISTORY_FILE), 'utf8').split('\n');

describe('history.jsonl limits', () => {
  test('below the limit an entry is appended and nothing else changes', () => {
    const d = tempDir('egress-hist-');
    history(d, HISTORY_MAX_LINES - 1);
    const before = readFileSync(join(d, HISTORY_FILE), 'utf8');
    appendHistory(d, entry(HISTORY_MAX_LINES - 1, 'confirm'));
    const after = readFileSync(join(d, HISTORY_FILE), 'utf8');
    expect(after.startsWith(before)).toBe(true);
    expect(readHistory(d)).toMatchObject({ skipped: 0, entries: { length: HISTORY_MAX_LINES } });
  });

  test('past the limit the newest refresh entries and the newest others are kept, in order, as valid JSONL', () => {
    const d = tempDir('egress-hist-');
    history(d, HISTORY_MAX_LINES);
    appendHistory(d, entry(HISTORY_MAX_LINES, 'rollback'));
    const lines = fileLines(d);
    expect(lines.pop()).toBe(''); // ends with a newline
    for (const l of lines) expect(() => JSON.parse(l) as unknown).not.toThrow();
    const { entries, skipped } = readHistory(d);
    expect(skipped).toBe(0);
    const refresh = entries.filter((e) => e.action === 'refresh');
    const others = entries.filter((e) => e.action !== 'refresh');
    expect(refresh).toHaveLength(HISTORY_KEEP_REFRESH);
    // 1,100 applies were written (fewer than their share: all stay) and the rollback.
    expect(others).toHaveLength(HISTORY_MAX_LINES / 10 + 1);
    // The newest of each: the last refresh written, and the rollback just appended, last of all.
    expect(refresh.at(-1)!.message).toBe(`#${HISTORY_MAX_LINES - 1}`);
    expect(entries.at(-1)).toMatchObject({ action: 'rollback', message: `#${HISTORY_MAX_LINES}` });
    expect(others[0]!.message).toBe('#0');
    const times = entries.map((e) => Date.parse(e.time));
    expect(times).toEqual([...times].sort((a, b) => a - b));
    expect(leftovers(join(d, HISTORY_FILE))).toEqual([]);
    // Cut back, it takes appends again without another rewrite.
    const cut = readFileSync(join(d, HISTORY_FILE), 'utf8');
    appendHistory(d, entry(HISTORY_MAX_LINES + 1, 'confirm'));
    expect(readFileSync(join(d, HISTORY_FILE), 'utf8').startsWith(cut)).toBe(true);
  });

  test('applies past their share: the newest HISTORY_KEEP_OTHERS stay, refresh rounds do not push them out', () => {
    const d = tempDir('egress-hist-');
    const lines = [];
    for (let i = 0; i < HISTORY_MAX_LINES; i++) lines.push(JSON.stringify(entry(i, i < 9000 ? 'apply' : 'refresh')));
    writeFileSync(join(d, HISTORY_FILE), lines.join('\n') + '\n');
    appendHistory(d, entry(HISTORY_MAX_LINES, 'confirm'));
    const { entries } = readHistory(d);
    expect(entries.filter((e) => e.action === 'refresh')).toHaveLength(2000);
    const others = entries.filter((e) => e.action !== 'refresh');
    expect(others).toHaveLength(HISTORY_KEEP_OTHERS);
    expect(others[0]!.message).toBe(`#${9000 - HISTORY_KEEP_OTHERS + 1}`);
    expect(others.at(-1)!.message).toBe(`#${HISTORY_MAX_LINES}`);
  });

  test('a crash between the rewrite and its rename leaves the old file intact; the next append cleans up and cuts back', () => {
    const d = tempDir('egress-hist-');
    history(d, HISTORY_MAX_LINES);
    const path = join(d, HISTORY_FILE);
    const before = readFileSync(path, 'utf8');
    let tmp = '';
    expect(() =>
      appendHistory(d, entry(HISTORY_MAX_LINES, 'apply'), {
        beforeRename(t) {
          tmp = t;
          throw new Error('killed');
        },
      }),
    ).toThrow('killed');
    expect(readFileSync(path, 'utf8')).toBe(before);
    expect(existsSync(tmp)).toBe(true); // what a kill leaves
    expect(leftovers(path)).toEqual([tmp]);
    appendHistory(d, entry(HISTORY_MAX_LINES + 1, 'confirm'));
    expect(leftovers(path)).toEqual([]);
    expect(readHistory(d).entries).toHaveLength(HISTORY_KEEP_REFRESH + HISTORY_MAX_LINES / 10 + 1);
    expect(readHistory(d).entries.at(-1)!.message).toBe(`#${HISTORY_MAX_LINES + 1}`);
  });

  test('an entry appended after a torn last line is not lost with it', () => {
    const d = tempDir('egress-hist-');
    appendHistory(d, entry(0, 'apply'));
    appendFileSync(join(d, HISTORY_FILE), '{"time":"2026-06-0');
    appendHistory(d, entry(1, 'confirm'));
    expect(readHistory(d)).toMatchObject({ skipped: 1, entries: [{ message: '#0' }, { message: '#1' }] });
  });
});
