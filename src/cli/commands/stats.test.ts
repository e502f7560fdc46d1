/** stats through its seams: --follow until a signal, live kernel counters and --sample from a fake status reader. */
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import type { Status } from '../../kernel/status.js';
import { statsCommand } from './stats.js';
import { captureIo, NOW, tempDir } from '../../../test/helpers.js';
import { iso, TCP4, UDP4 } from '../../../test/observe/lines.js';
import { envelopeLines, jsonResult } from '../../../test/json.js';
import type { StatsJson } from '../../report/stats.js';

const io = (cwd: string) => captureIo(cwd);

const STATUS: Status = {
  stateDir: '/x',
  applied: true,
  backend: 'nft',
  mode: 'enforce',
  default: 'reject',
  policyFile: '/etc/egress.yaml',
  policyHash: 'sha256:' + 'cd'.repeat(32),
  drift: false,
  interrupted: false,
  counters: [
    { rule: 'dns', action: 'allow', family: 'ipv4', packets: 10, bytes: 600 },
    { rule: 'smtp', action: 'deny', family: 'ipv4', packets: 1234, bytes: 74040 },
    { rule: 'reject', action: 'default', family: 'ipv6', packets: 7, bytes: 560 },
  ],
};

/** JSON reports printed so far (one per line). */
const reports = (i: { out: string }) => envelopeLines(i.out, 'stats').map((e) => e.result as StatsJson);

/** Wait for a condition; the bound is only a backstop below the test timeout, so a hang fails saying what it waited for. */
async function until(cond: () => boolean, what: string, backstopMs = 50_000): Promise<void> {
  const end = Date.now() + backstopMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`waited ${backstopMs} ms for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('stats seams', () => {
  test('--follow reads what is appended until the signal, then reports once more', async () => {
    const dir = tempDir('egress-follow-');
    const log = join(dir, 'kern.log');
    writeFileSync(log, iso(`EGRESS D:smtp ${TCP4}`, '2026-05-31T10:00:00Z') + '\n');
    const ac = new AbortController();
    const i = io(dir);
    const done = statsCommand(i, ['kern.log'], { follow: true, json: true, interval: '1' }, { signal: ac.signal, pollMs: 10, status: async () => ({ ...STATUS, applied: false }) });
    // Append only once a periodic report shows the file was read, then stop once one shows the appended line.
    await until(() => reports(i).some((r) => r.connections === 1), 'a report of the first line');
    appendFileSync(log, iso(`EGRESS P:- ${UDP4}`, '2026-05-31T10:00:05Z') + '\n');
    await until(() => reports(i).some((r) => r.connections === 2), 'a report of the appended line');
    ac.abort();
    expect(await done).toBe(0);
    expect(reports(i).at(-1)).toMatchObject({ connections: 2, mode: 'enforce' });
  });

  test('--follow on a pipe that never ends (tail -F kern.log | egress stats --follow -): reports as lines arrive', async () => {
    const lines = [iso(`EGRESS D:smtp ${TCP4}`, '2026-05-31T10:00:00Z'), iso(`EGRESS P:- ${UDP4}`, '2026-05-31T10:00:05Z')];
    let feed: ((s: string) => void) | undefined;
    async function* pipe(): AsyncIterable<string> {
      // The first line split across two chunks, then one more line later; never ends by itself.
      yield lines[0]!.slice(0, 20);
      yield lines[0]!.slice(20) + '\n';
      for (;;) yield await new Promise<string>((r) => (feed = r));
    }
    const ac = new AbortController();
    const i = Object.assign(io(tmpdir()), { stdinChunks: pipe });
    const done = statsCommand(i, ['-'], { follow: true, json: true, interval: '1' }, { signal: ac.signal, status: async () => ({ ...STATUS, applied: false }) });
    // The first periodic report, printed while the pipe is still open.
    await until(() => reports(i).length > 0, 'the first periodic report');
    expect(reports(i).at(-1)).toMatchObject({ connections: 1 }); // a periodic report before the input ended
    await until(() => feed !== undefined, 'the pipe to ask for more');
    feed!(lines[1]! + '\n');
    await until(() => reports(i).some((r) => r.connections === 2), 'a report of the line fed later');
    ac.abort();
    expect(await done).toBe(0);
    expect(reports(i).at(-1)).toMatchObject({ connections: 2 });
  });

  test('the live kernel counters of what denied, next to the logged numbers', async () => {
    const dir = tempDir('egress-counters-');
    writeFileSync(join(dir, 'kern.log'), iso(`EGRESS D:smtp ${TCP4}`) + '\n');
    const i = io(dir);
    expect(await statsCommand(i, ['kern.log'], {}, { status: async () => STATUS })).toBe(0);
    expect(i.out).toMatch(/kernel counters \(exact, since the ruleset was loaded\)\n {2}nft, enforce mode, policy \/etc\/egress\.yaml \(cdcdcdcdcdcd\)\n {2}smtp +ipv4 +1,234 packets +74,040 bytes\n {2}\(default reject\) +ipv6 +7 packets +560 bytes\n/);
    const j = io(dir);
    await statsCommand(j, ['kern.log'], { json: true }, { status: async () => STATUS });
    expect(jsonResult(j.out, 'stats').kernelCounters.counters).toHaveLength(3);
  });

  test('what the log rate limit kept out of the log is said, from the kernel counts', async () => {
    const dir = tempDir('egress-counters-');
    writeFileSync(join(dir, 'kern.log'), iso(`EGRESS D:smtp ${TCP4}`) + '\n');
    const logging = { denials: 1241, logged: 1000, notLogged: 241, limit: '10/second burst 10' };
    const i = io(dir);
    expect(await statsCommand(i, ['kern.log'], {}, { status: async () => ({ ...STATUS, logging }) })).toBe(0);
    expect(i.out).toContain('log: 1,000 of 1,241 denials logged; 241 NOT logged (rate limit 10/second burst 10)');
    const j = io(dir);
    await statsCommand(j, ['kern.log'], { json: true }, { status: async () => ({ ...STATUS, logging }) });
    expect(jsonResult(j.out, 'stats').kernelCounters.logging).toEqual(logging);
    const k = io(dir);
    await statsCommand(k, ['kern.log'], {}, { status: async () => ({ ...STATUS, logging: { ...logging, logged: 1241, notLogged: 0 } }) });
    expect(k.out).toContain('log: every one of 1,241 denials logged');
  });

  test('--sample appends the live counters to counters.jsonl', async () => {
    const dir = tempDir('egress-sample-');
    mkdirSync(join(dir, 'state'));
    const i = io(dir);
    expect(await statsCommand(i, [], { sample: true }, { status: async () => STATUS })).toBe(0);
    expect(await statsCommand(i, [], { sample: true }, { status: async () => STATUS })).toBe(0);
    const lines = readFileSync(join(dir, 'state', 'counters.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toHaveLength(2);
    expect(lines[0]).toEqual({ time: NOW.toISOString(), policyHash: STATUS.policyHash, backend: 'nft', counters: STATUS.counters });
    expect(i.out).toMatch(/^recorded 3 counters in .*counters\.jsonl\n/);
  });
});
