/** Log commands without a LOG (journal, else kern.log, else messages), the prefix hint, and progress on standard error. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { fakeExecer } from '../kernel/exec.js';
import { statsCommand } from './commands/stats.js';
import { learnCommand } from './commands/learn.js';
import { replayCommand } from './commands/replay.js';
import { startProgress } from './progress.js';
import { captureIo, tempDir } from '../../test/helpers.js';
import { INBOUND, iso, journal, TCP4, UDP4 } from '../../test/observe/lines.js';
import { envelope, jsonResult } from '../../test/json.js';

const dir = tempDir('egress-sources-');
const KERN = join(dir, 'kern.log');
const MESSAGES = join(dir, 'messages');
writeFileSync(KERN, [iso(`EGRESS D:smtp ${TCP4}`), iso(`EGRESS P:- ${UDP4}`)].join('\n') + '\n');
writeFileSync(MESSAGES, iso(`EGRESS D:smtp ${TCP4}`) + '\n');
writeFileSync(join(dir, 'policy.yaml'), 'version: 1\ndefault: reject\ndeny:\n  - { name: smtp, reason: no mail, ports: [tcp/25] }\n');
const JOURNAL = [journal(`EGRESS D:smtp ${TCP4}`), journal(`EGRESS D:smtp ${UDP4}`), journal(`EGRESS P:- ${UDP4.replace('DPT=53', 'DPT=54')}`)].join('\n') + '\n';

/** journalctl as a host with (or without) kernel messages in its journal answers; 127: not installed. */
function journalctl(has: boolean | 127) {
  return fakeExecer((c) => {
    if (c.argv[0] !== 'journalctl') return { code: 127 };
    if (has === 127) return { code: 127, stderr: 'journalctl: not found' };
    if (c.argv.includes('-n')) return { code: 0, stdout: has ? journal(`EGRESS D:smtp ${TCP4}`) + '\n' : '' };
    return { code: 0, stdout: JOURNAL };
  });
}

const statsOf = async (has: boolean | 127, logs: string[], extra: Record<string, unknown> = {}) => {
  const io = captureIo(dir);
  const code = await statsCommand(io, [], { json: true, ...extra }, { execer: journalctl(has), defaultLogs: logs, status: async () => ({ applied: false }) as never });
  return { code, io, j: io.out ? (jsonResult(io.out, 'stats', code) as { lines: { lines: number } }) : undefined };
};

describe('no LOG given: the journal where it has kernel messages, else kern.log, else messages; said on stderr', () => {
  test.each([
    ['journal with kernel messages', true, [KERN, MESSAGES], 3, /reading the journal \(journalctl -k/],
    ['journal without kernel messages (a container)', false, [KERN, MESSAGES], 2, new RegExp(`reading ${KERN}\\n`)],
    ['no journalctl', 127 as const, [KERN, MESSAGES], 2, new RegExp(`reading ${KERN}\\n`)],
    ['no journal, no kern.log', false, [join(dir, 'nope'), MESSAGES], 1, new RegExp(`reading ${MESSAGES}\\n`)],
  ])('%s', async (_what, has, logs, lines, said) => {
    const r = await statsOf(has, logs);
    expect(r.code).toBe(0);
    expect(r.j!.lines.lines).toBe(lines);
    expect(r.io.err).toMatch(said);
  });

  test('-q says nothing; with nothing to read, a usage error naming what was tried', async () => {
    expect((await statsOf(true, [KERN], { quiet: true })).io.err).toBe('');
    await expect(statsOf(false, [join(dir, 'nope')])).rejects.toThrow(/no log given, the journal has no kernel messages \(journalctl -k\), and none of .*nope exists/);
  });

  test('learn and replay choose the same way', async () => {
    const io = captureIo(dir);
    expect(await learnCommand(io, [], { policy: 'policy.yaml', json: true }, { execer: journalctl(true), defaultLogs: [KERN], status: async () => ({ applied: false }) as never })).toBe(0);
    expect(io.err).toMatch(/reading the journal/);
    expect(envelope(io.out, 'learn', 0)).toMatchObject({ ok: true });
    const io2 = captureIo(dir);
    expect(await replayCommand(io2, 'policy.yaml', [], { json: true }, { execer: journalctl(false), defaultLogs: [KERN] })).toBe(0);
    expect(io2.err).toMatch(new RegExp(`reading ${KERN}`));
  });
});

describe('no egress lines: the hint names the prefixes the log holds', () => {
  test.each([
    ['UFW', `[UFW BLOCK] ${INBOUND}`, /carry "\[UFW BLOCK\]" \(3\): to count them, --prefix '\[UFW BLOCK\]'/],
    ['a custom prefix', `FW-OUT: ${TCP4}`, /carry "FW-OUT:" \(3\): to count them, --prefix FW-OUT:/],
  ])('%s', async (_what, line, hint) => {
    const f = join(dir, `other-${_what.length}.log`);
    writeFileSync(f, Array.from({ length: 3 }, () => iso(line)).join('\n') + '\n');
    const io = captureIo(dir);
    expect(await statsCommand(io, [f], { json: true }, { status: async () => ({ applied: false }) as never })).toBe(0);
    expect(io.err).toMatch(hint);
    expect(io.err).toMatch(/no lines with an egress tag; the 3 netfilter lines of other LOG rules/);
  });

  test('none when there are egress lines', async () => {
    const io = captureIo(dir);
    await statsCommand(io, [KERN], { json: true }, { status: async () => ({ applied: false }) as never });
    expect(io.err).toBe('');
  });
});

describe('progress', () => {
  test('nothing on stderr when it is not a terminal, or with -q', async () => {
    for (const [tty, quiet] of [[false, false], [true, true]] as const) {
      const io = captureIo(dir);
      await statsCommand(io, [KERN], { json: true, quiet }, { stderrTty: tty, status: async () => ({ applied: false }) as never });
      expect(io.err).toBe('');
    }
  });

  test('on a terminal: bytes of the total, lines and lines/s, redrawn in place, cleared at the end', async () => {
    const io = captureIo(dir);
    let clock = 0;
    const sample = { bytes: 0, lines: 0 };
    const p = startProgress(io, true, 'egress: reading', 4_000_000, () => sample, () => clock);
    sample.bytes = 1_000_000;
    sample.lines = 5000;
    clock = 2000;
    await new Promise<void>((r) => {
      const t = setInterval(() => {
        if (io.err) {
          clearInterval(t);
          r();
        }
      }, 20);
    });
    p.stop();
    expect(io.err).toMatch(/^\r\x1b\[Kegress: reading: \[#####\.{15}\] 25% 1\.0\/4\.0 MB, 5,000 lines, 2,500 lines\/s/);
    expect(io.err.endsWith('\r\x1b[K')).toBe(true);
  });
});
