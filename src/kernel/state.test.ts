import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, lchownSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { appendHistory, readHistory, type HistoryEntry } from './history.js';
import { acquireLock, acquireLockWaiting, holderText, LockBusyError, processStartTime, waitFor } from './lock.js';
import { ensureStateDir, noneSnapshot, readState, requireStateDir, StateError, stateDirProblem, stateFilePath, writeState } from './state.js';
import { tempDir } from '../../test/helpers.js';

const dir = () => tempDir('egress-state-');
const who = { user: 'root', uid: 0 };

describe('state files', () => {
  test('round trip', () => {
    const d = dir();
    const s = noneSnapshot('nft', who, '2026-01-01T00:00:00.000Z');
    writeState(d, 'previous', s);
    expect(readState(d, 'previous')).toEqual(s);
    expect(readState(d, 'live')).toBeUndefined();
  });

  test('the file is the JSON of { format, body, checksum }, byte for byte, for bodies with text that needs escaping', () => {
    const d = dir();
    const s = { ...noneSnapshot('nft', who, '2026-01-01T00:00:00.000Z'), policyFile: '/etc/egress/"quoted"\\path\n\u2028é' };
    writeState(d, 'previous', s);
    const json = JSON.stringify(s);
    const checksum = 'sha256:' + createHash('sha256').update(json).digest('hex');
    expect(readFileSync(stateFilePath(d, 'previous'), 'utf8')).toBe(JSON.stringify({ format: 1, body: s, checksum }) + '\n');
  });

  test.each([
    ['a flipped byte', (t: string) => t.replace('"nft"', '"ipt"')],
    ['truncation', (t: string) => t.slice(0, t.length / 2)],
    ['another format', (t: string) => t.replace('"format":1', '"format":9')],
    ['an empty file', () => ''],
  ])('%s is a StateError, never a value', (_n, spoil) => {
    const d = dir();
    writeState(d, 'previous', noneSnapshot('nft', who, '2026-01-01T00:00:00.000Z'));
    const p = stateFilePath(d, 'previous');
    writeFileSync(p, spoil(readFileSync(p, 'utf8')));
    expect(() => readState(d, 'previous')).toThrow(StateError);
    expect(() => readState(d, 'previous')).toThrow(/corrupted/);
  });

  test('a missing state directory is a clear error', () => {
    expect(() => requireStateDir(join(dir(), 'nope'))).toThrow(/no egress state directory/);
  });
});

describe('bodies are checked, not only checksums (D12)', () => {
  const snap = noneSnapshot('nft', who, '2026-01-01T00:00:00.000Z');
  const intent = { action: 'apply', next: snap, prior: null, nextFingerprint: 'a', priorFingerprint: 'b', checkBackend: 'nft', pid: 4242, startedAt: '2026-01-01T00:00:00.000Z' };
  const pending = { token: 'abc123', deadline: '2026-01-01T00:02:00.000Z', appliedAt: 'x', appliedBy: who, watchdog: { kind: 'systemd', unit: 'egress-confirm-abc123' } };

  test('a well-formed intent record and pending confirmation read back', () => {
    const d = dir();
    writeState(d, 'applying', intent as never);
    expect(readState(d, 'applying')).toEqual(intent);
    writeState(d, 'pending', pending as never);
    expect(readState(d, 'pending')).toEqual(pending);
  });

  test.each([
    ['applying', { foo: 1 }],
    ['applying', { ...intent, checkBackend: undefined }],
    ['applying', { ...intent, pid: 'x' }],
    ['applying', { ...intent, next: { ...snap, ruleset: 'flush ruleset' } }],
    ['pending', { ...pending, watchdog: { kind: 'systemd', unit: 'sshd.service' } }],
    ['pending', { ...pending, watchdog: { kind: 'process', pid: 1 } }],
    ['pending', { ...pending, deadline: 'soon' }],
  ] as const)('a %s body with a valid checksum but bogus fields is corrupted: %j', (f, body) => {
    const d = dir();
    writeState(d, f, body as never);
    expect(() => readState(d, f)).toThrow(/is corrupted \(not an? (intent record|pending confirmation)\)/);
  });
});

describe('the state directory must be root\'s alone (D3)', () => {
  test.each([
    ['world-writable', 0o777, undefined, /can be written by every user \(mode 0777\)/],
    ['group-writable', 0o770, undefined, /can be written by its group \(mode 0770\)/],
    ['owned by another user', 0o700, 65534, /is owned by uid 65534, not by root/],
  ])('%s is refused before anything is read or written', (_n, mode, owner, why) => {
    const d = dir();
    chmodSync(d, mode);
    if (owner !== undefined) chownSync(d, owner, owner);
    expect(() => requireStateDir(d)).toThrow(why);
    expect(() => ensureStateDir(d)).toThrow(StateError);
  });

  test('root\'s own 0700 and 0755 directories are used', () => {
    const d = dir();
    requireStateDir(d);
    chmodSync(d, 0o755);
    requireStateDir(d);
    expect(stateDirProblem({ uid: 1000, mode: 0o40700 }, 1000)).toBeUndefined(); // a user's own directory, for a user's own runs
  });
});

describe('a state path someone else could replace (a planted link is followed as root)', () => {
  test.each([
    ['a 0777 parent', 0o777, /refusing the state directory .*: .* can be written by every user \(mode 0777\), so another user could put a link/],
    ['a sticky 1777 parent (like /tmp)', 0o1777, /can be written by every user \(mode 1777\) and .*state is owned by uid 65534/],
  ])("the state directory as another user's link in %s is refused", (_n, mode, why) => {
    const parent = dir();
    const real = join(parent, 'real');
    mkdirSync(real, { mode: 0o700 });
    chmodSync(parent, mode);
    symlinkSync(real, join(parent, 'state'));
    lchownSync(join(parent, 'state'), 65534, 65534);
    expect(() => requireStateDir(join(parent, 'state'))).toThrow(why);
    expect(() => ensureStateDir(join(parent, 'state'))).toThrow(StateError);
  });

  test("root's own directory (or link) in a sticky parent, and a parent only root writes, are used", () => {
    const parent = dir();
    mkdirSync(join(parent, 'real'), { mode: 0o700 });
    symlinkSync(join(parent, 'real'), join(parent, 'state'));
    requireStateDir(join(parent, 'state'));
    chmodSync(parent, 0o1777);
    requireStateDir(join(parent, 'state'));
    requireStateDir(join(parent, 'real'));
  });
});

describe('state files that are not files', () => {
  test('writing over a directory, reading a history that is one, taking a lock that is one: StateErrors naming it (were "internal error")', () => {
    const d = dir();
    for (const f of ['live.json', 'history.jsonl', 'lock']) mkdirSync(join(d, f));
    writeFileSync(join(d, 'live.json', 'x'), '');
    expect(() => writeState(d, 'live', noneSnapshot('nft', who, '2026-01-01T00:00:00.000Z'))).toThrow(/^cannot write .*\/live\.json: is a directory$/);
    expect(() => readHistory(d)).toThrow(StateError);
    expect(() => readHistory(d)).toThrow(/^cannot read .*\/history\.jsonl: is a directory$/);
    expect(() => acquireLock(d)).toThrow(StateError);
    expect(() => acquireLock(d)).toThrow(/^cannot take the lock .*\/lock: it cannot be read \(is a directory\), so it is no lock egress wrote; move it aside$/);
  });
});

describe('lock', () => {
  test('a life-cycle command waits for a holder that lets go (the watchdog settling as confirm starts), and gives up naming it when the wait is over', async () => {
    const d = dir();
    const held = acquireLock(d);
    const waiting = acquireLockWaiting(d, 60_000);
    held.release(); // the holder lets go after the waiter's first try
    (await waiting).release();
    const again = acquireLock(d);
    await expect(acquireLockWaiting(d, 0)).rejects.toThrow(LockBusyError);
    again.release();
  });

  test('a live holder blocks with its pid; release frees it', () => {
    const d = dir();
    const l = acquireLock(d);
    // Our own pid holds it: a second acquire must refuse, naming us.
    expect(() => acquireLock(d)).toThrow(LockBusyError);
    expect(() => acquireLock(d)).toThrow(`another egress command holds the lock: an egress command (pid ${process.pid})`);
    l.release();
    acquireLock(d).release();
  });

  test('the busy message names the holder: the watchdog, boot restore, or the command', () => {
    const argv = (a: string[]) => () => a;
    expect(holderText(1, argv(['node', '/usr/bin/egress', '_auto-rollback', '--token', 'x']))).toMatch(/confirm watchdog/);
    expect(holderText(1, argv(['node', '/usr/bin/egress', '_restore-boot']))).toBe('the boot-time restore');
    expect(holderText(1, argv(['node', '/usr/bin/egress', 'apply', 'policy.yaml']))).toBe('egress apply');
    expect(holderText(1, argv(['node', 'x.js']))).toBe('an egress command');
    expect(holderText(1, () => undefined)).toBe('an egress command');
  });

  test('a bare pid (a hand-made lock) blocks only while that pid runs egress: any other live process is stale (D13)', async () => {
    const d = dir();
    const other = spawn('sleep', ['600'], { stdio: 'ignore' });
    try {
      await waitFor(() => processStartTime(other.pid!) !== undefined, 5000);
      writeFileSync(join(d, 'lock'), `${other.pid}\n`);
      acquireLock(d).release();
    } finally {
      other.kill('SIGKILL');
    }
  });

  test('a lock that cannot be written is a StateError saying why, not an internal error (D13)', () => {
    const d = dir();
    writeFileSync(join(d, 'file'), '');
    expect(() => acquireLock(join(d, 'file'))).toThrow(StateError);
    expect(() => acquireLock(join(d, 'file'))).toThrow(/^cannot take the lock in .*: a part of the path is not a directory$/);
  });

  test('a state path that is a file is said to be one (it was "internal error: EEXIST")', () => {
    const d = dir();
    writeFileSync(join(d, 'state'), '');
    expect(() => ensureStateDir(join(d, 'state'))).toThrow(/^the state path .* is not a directory$/);
  });

  test('a dead holder (SIGKILLed) is stale and taken over', () => {
    const d = dir();
    writeFileSync(join(d, 'lock'), '999999999 12345\n');
    const l = acquireLock(d);
    expect(readFileSync(join(d, 'lock'), 'utf8')).toMatch(new RegExp(`^${process.pid} `));
    l.release();
  });

  // Locks are put in place whole (link of a synced file), so an empty or
  // partial one was never written by a live egress: stale at once. It used
  // to block for 5 s after its mtime, a rule that depended on the clock.
  test.each([
    ['an empty', ''],
    ['a torn', `${process.pid} `],
  ])('%s lock file is stale at once, however fresh', (_n, text) => {
    const d = dir();
    writeFileSync(join(d, 'lock'), text);
    const l = acquireLock(d);
    expect(readFileSync(join(d, 'lock'), 'utf8')).toBe(`${process.pid} ${processStartTime(process.pid)}\n`);
    l.release();
    expect(readdirSync(d)).toEqual([]);
  });

  test('the lock file holds the whole owner line from the moment it exists, and nothing is left beside it', () => {
    const d = dir();
    const l = acquireLock(d);
    expect(readdirSync(d)).toEqual(['lock']);
    expect(readFileSync(join(d, 'lock'), 'utf8')).toBe(`${process.pid} ${processStartTime(process.pid)}\n`);
    l.release();
    expect(readdirSync(d)).toEqual([]);
  });
});

describe('history', () => {
  const e: HistoryEntry = {
    time: '2026-06-01T12:00:00.000Z',
    action: 'apply',
    user: 'alice',
    uid: 1002,
    policyFile: '/etc/egress.yaml',
    policyHash: 'sha256:ab',
    backend: 'nft',
    mode: 'enforce',
    outcome: 'pending',
    message: 'awaiting confirmation',
  };

  test('one JSON object per line, exactly these fields in this order', () => {
    const d = dir();
    appendHistory(d, e);
    appendHistory(d, { ...e, action: 'confirm', outcome: 'ok', message: undefined });
    const lines = readFileSync(join(d, 'history.jsonl'), 'utf8').trim().split('\n');
    expect(Object.keys(JSON.parse(lines[0]!))).toEqual(['time', 'action', 'user', 'uid', 'policyFile', 'policyHash', 'backend', 'mode', 'outcome', 'message']);
    expect(JSON.parse(lines[1]!)).not.toHaveProperty('message');
    expect(readHistory(d).entries.map((x) => x.action)).toEqual(['apply', 'confirm']);
  });

  test('a torn last line is skipped, not fatal', () => {
    const d = dir();
    appendHistory(d, e);
    appendFileSync(join(d, 'history.jsonl'), '{"time":"2026-06-0');
    expect(readHistory(d)).toMatchObject({ skipped: 1, entries: [e] });
  });
});
