import { describe, expect, test } from 'vitest';
import { captureIo, tempDir } from '../../test/helpers.js';
import { statusCommand } from '../cli/commands/status.js';
import { fakeExecer } from './exec.js';
import { expiriesOf } from './status.js';

describe('status: expiries of the live policy', () => {
  const POLICY = `version: 1
allow:
  - { name: old, reason: r, to: [192.0.2.1], expires: 2026-05-30 }
  - { name: soon, reason: r, to: [192.0.2.2], expires: 2026-06-03 }
  - { name: plain, reason: r, to: [192.0.2.3] }
deny:
  - { name: today, reason: r, to: [192.0.2.4], expires: 2026-06-01 }
`;
  test('past and upcoming ends (the end of the expiry day, UTC), soonest first; rules without expires are not listed', () => {
    const now = new Date('2026-06-01T12:00:00Z');
    expect(expiriesOf('p.yaml', POLICY, now)).toEqual([
      { rule: 'old', expires: '2026-05-30', ends: '2026-05-31T00:00:00.000Z', past: true, daysLeft: -1 },
      { rule: 'today', expires: '2026-06-01', ends: '2026-06-02T00:00:00.000Z', past: false, daysLeft: 1 },
      { rule: 'soon', expires: '2026-06-03', ends: '2026-06-04T00:00:00.000Z', past: false, daysLeft: 3 },
    ]);
  });

  test('a policy text that does not parse lists nothing rather than failing status', () => {
    expect(expiriesOf('p.yaml', 'version: [', new Date())).toEqual([]);
  });
});

describe('status on a host where egress never applied anything', () => {
  test('is inactive, exit 0, in text and in --json (it exited 1: "no egress state directory")', async () => {
    const cwd = tempDir('egress-status-');
    const io = captureIo(cwd);
    expect(await statusCommand(io, {}, { uid: 0, execer: fakeExecer() })).toBe(0);
    expect(io.out).toMatch(/^status: +inactive: nothing of egress is applied \(state: .*state\)\n$/);
    const j = captureIo(cwd);
    expect(await statusCommand(j, { json: true }, { uid: 0, execer: fakeExecer() })).toBe(0);
    expect(JSON.parse(j.out)).toMatchObject({ ok: true, active: false, applied: false, counters: [] });
  });
});
