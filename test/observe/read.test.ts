import { appendFileSync, renameSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { constants as zlibConstants, gunzipSync, gzipSync } from 'node:zlib';
import { describe, expect, test } from 'vitest';
import { fakeExecer } from '../../src/kernel/exec.js';
import type { LogEvent } from '../../src/logs/event.js';
import { LogReader, readLogs, ReadError, type LogSource, type ReadOptions } from '../../src/logs/read.js';
import { NOW, tempDir } from '../helpers.js';
import { iso, journal, kmsg, syslog, TCP4, UDP4 } from './lines.js';

const tmp = () => tempDir('egress-read-');
const opts = (o: Partial<ReadOptions> = {}): ReadOptions => ({ now: NOW.getTime(), bootTimeMs: Date.UTC(2026, 10, 23), ...o });

async function read(sources: LogSource[], o: Partial<ReadOptions> = {}) {
  const events: LogEvent[] = [];
  const counts = await readLogs(sources, opts(o), (e) => events.push(e));
  return { events, counts };
}

const file = (path: string): LogSource => ({ kind: 'file', path, name: path });

describe('files', () => {
  test('plain and gzip (by magic bytes, whatever the name), CRLF, no final newline', async () => {
    const d = tmp();
    const text = [syslog(`EGRESS D:smtp ${TCP4}`), 'Nov 23 09:14:43 web1 CRON[1]: hello', syslog(`EGRESS p:- ${UDP4}`)].join('\r\n');
    writeFileSync(join(d, 'kern.log'), text);
    writeFileSync(join(d, 'kern.log.2'), gzipSync(text + '\n'));
    const plain = await read([file(join(d, 'kern.log'))]);
    const gz = await read([file(join(d, 'kern.log.2'))]);
    for (const r of [plain, gz]) {
      expect(r.events.map((e) => [e.rule ?? '-', e.dpt])).toEqual([
        ['smtp', 25],
        ['-', 53],
      ]);
      expect(r.counts).toMatchObject({ lines: 3, events: 2, malformed: 0 });
    }
  });

  test('a gzip file cut short keeps what was readable and counts the damage', async () => {
    const d = tmp();
    const lines = Array.from({ length: 2000 }, (_, i) => syslog(`EGRESS D:smtp ${TCP4.replace('SPT=57408', `SPT=${10000 + i}`)}`)).join('\n') + '\n';
    const gz = gzipSync(lines);
    const cut = gz.subarray(0, Math.floor(gz.length * 0.6));
    writeFileSync(join(d, 'cut.gz'), cut);
    // What the cut file still holds, by zlib itself: so many whole lines, then maybe part of one.
    const readable = gunzipSync(cut, { finishFlush: zlibConstants.Z_SYNC_FLUSH }).toString('utf8');
    const whole = readable.split('\n').length - 1;
    const torn = !readable.endsWith('\n');
    expect(whole).toBeLessThan(2000);
    const r = await read([file(join(d, 'cut.gz'))]);
    expect(r.events.map((e) => e.spt)).toEqual(Array.from({ length: whole }, (_, i) => 10000 + i));
    expect(r.counts.problems.map((p) => p.reason)).toEqual([
      'gzip data ends early or is corrupt (unexpected end of file)',
      ...(torn ? ['missing or cut SPT=/DPT= (truncated line?)'] : []),
    ]);
    expect(r.counts.malformed).toBe(torn ? 2 : 1);
  });

  test('a gzip file with trailing garbage keeps its last lines (they were lost with the chunk that failed) — D18', async () => {
    const d = tmp();
    const lines = (from: number, n: number) => Array.from({ length: n }, (_, i) => syslog(`EGRESS D:smtp ${TCP4.replace('SPT=57408', `SPT=${from + i}`)}`)).join('\n') + '\n';
    // Two members (as `cat a.gz b.gz` makes), then garbage: every line of both must be read.
    writeFileSync(join(d, 'tail.gz'), Buffer.concat([gzipSync(lines(10000, 3)), gzipSync(lines(20000, 2)), Buffer.from('NOT GZIP, SOMETHING APPENDED')]));
    const r = await read([file(join(d, 'tail.gz'))]);
    expect(r.events.map((e) => e.spt)).toEqual([10000, 10001, 10002, 20000, 20001]);
    expect(r.counts).toMatchObject({ lines: 5, malformed: 1 });
    expect(r.counts.problems.map((p) => p.reason)).toEqual([expect.stringMatching(/^gzip data ends early or is corrupt/)]);
  });

  test('files are read oldest first (rotation order), whatever order they were given in', async () => {
    const d = tmp();
    const mk = (name: string, port: number, age: number) => {
      writeFileSync(join(d, name), syslog(`EGRESS D:x ${TCP4.replace('DPT=25', `DPT=${port}`)}`) + '\n');
      const t = (NOW.getTime() - age * 86_400_000) / 1000;
      utimesSync(join(d, name), t, t);
    };
    mk('kern.log', 3, 0);
    mk('kern.log.1', 2, 1);
    mk('kern.log.2.gz', 1, 2);
    const r = await read(['kern.log', 'kern.log.1', 'kern.log.2.gz'].map((n) => file(join(d, n))));
    expect(r.events.map((e) => e.dpt)).toEqual([1, 2, 3]);
  });

  test('an unreadable file is a ReadError naming it', async () => {
    await expect(read([{ kind: 'file', path: '/nonexistent/kern.log', name: 'kern.log' }])).rejects.toThrow(new ReadError('cannot read kern.log: no such file'));
  });

  test('a binary file (no newlines) is counted as malformed, not read as one line', async () => {
    const d = tmp();
    writeFileSync(join(d, 'bin'), Buffer.alloc(300_000, 1));
    const r = await read([file(join(d, 'bin'))]);
    expect(r.events).toEqual([]);
    expect(r.counts).toMatchObject({ lines: 1, malformed: 1, problems: [{ where: join(d, 'bin'), line: 1, reason: 'line longer than 65536 bytes (not a log file?)' }] });
  });

  test('one 20 MB line is one malformed line, and the lines after it keep their numbers (it counted as 40, shifting them) — D18', async () => {
    const d = tmp();
    writeFileSync(join(d, 'kern.log'), [iso(`EGRESS D:smtp ${TCP4}`), 'x'.repeat(20 * 1024 * 1024), iso(`EGRESS D:smtp ${TCP4.replace('SPT=57408', 'SPT=57409')}`), 'not a log line', ''].join('\n'));
    const r = await read([file(join(d, 'kern.log'))]);
    expect(r.events).toHaveLength(2);
    expect(r.counts).toMatchObject({ lines: 4, malformed: 1 });
    expect(r.counts.problems).toEqual([{ where: join(d, 'kern.log'), line: 2, reason: 'line longer than 65536 bytes (not a log file?)' }]);
  });

  test('a UTF-16 log is refused, saying so (it read as 0 events and 0 malformed lines, silently) — D18', async () => {
    const d = tmp();
    const text = '\ufeff#Version: 1.5\r\n#Fields: date time action protocol src-ip dst-ip src-port dst-port path\r\n2026-11-23 09:14:42 DROP TCP 192.0.2.1 198.51.100.7 50000 25 SEND\r\n';
    writeFileSync(join(d, 'pfirewall.log'), Buffer.from(text, 'utf16le'));
    await expect(read([file(join(d, 'pfirewall.log'))])).rejects.toThrow(ReadError);
    await expect(read([file(join(d, 'pfirewall.log'))])).rejects.toThrow(/is UTF-16; convert it first \(iconv -f UTF-16 -t UTF-8/);
  });

  test('a Windows Firewall log is recognised by its header and read through pfirewall.ts', async () => {
    const d = tmp();
    writeFileSync(
      join(d, 'pfirewall.log'),
      [
        '#Version: 1.5',
        '#Software: Microsoft Windows Firewall',
        '#Time Format: Local',
        '#Fields: date time action protocol src-ip dst-ip src-port dst-port size tcpflags tcpsyn tcpack tcpwin icmptype icmpcode info path',
        '',
        '2026-11-23 09:14:42 DROP TCP 192.0.2.1 198.51.100.7 50000 25 0 - 0 0 0 - - - SEND',
        '2026-11-23 09:14:43 ALLOW UDP 192.0.2.1 192.0.2.53 50001 53 0 - - - - - - - SEND',
        '2026-11-23 09:14:44 DROP TCP 203.0.113.5 192.0.2.1 4444 3389 0 - 0 0 0 - - - RECEIVE',
        '2026-11-23 09:14:45 DROP TCP 192.0.2.1',
      ].join('\r\n') + '\r\n',
    );
    const r = await read([file(join(d, 'pfirewall.log'))]);
    expect(r.events).toMatchObject([
      { source: 'pfirewall', verdict: 'denied', dst: '198.51.100.7', proto: 'tcp', dpt: 25, time: new Date(2026, 10, 23, 9, 14, 42).getTime() },
      { source: 'pfirewall', verdict: 'allowed', dst: '192.0.2.53', proto: 'udp', dpt: 53 },
    ]);
    expect(r.counts).toMatchObject({ pfirewall: 2, inbound: 1, malformed: 1 });
  });
});

describe('stdin, kmsg and the journal', () => {
  test('stdin in chunks that split lines and the 64-byte head anywhere, kernel log and pfirewall.log', async () => {
    const kern = `${syslog(`EGRESS D:smtp ${TCP4}`)}\n${syslog(`EGRESS D:smtp ${TCP4.replace('SPT=57408', 'SPT=57409')}`)}\ncaf\u00e9 garbage\n`;
    const pf = [
      '#Version: 1.5',
      '#Fields: date time action protocol src-ip dst-ip src-port dst-port size tcpflags tcpsyn tcpack tcpwin icmptype icmpcode info path',
      '2026-11-23 09:14:42 DROP TCP 192.0.2.1 198.51.100.7 50000 25 0 - 0 0 0 - - - SEND',
      '2026-11-23 09:14:43 ALLOW UDP 192.0.2.1 192.0.2.53 50001 53 0 - - - - - - - SEND',
    ].join('\r\n') + '\r\n';
    for (const text of [kern, pf]) {
      const whole = await read([{ kind: 'stdin', chunks: async function* () { yield text; } }]);
      for (const size of [1, 7, 63, 64, 65, 200]) {
        const bytes = Buffer.from(text, 'utf8');
        const got = await read([{ kind: 'stdin', chunks: async function* () { for (let k = 0; k < bytes.length; k += size) yield bytes.subarray(k, k + size); } }]);
        expect(got, `chunks of ${size}`).toEqual(whole);
      }
      expect(whole.events.map((e) => [e.dst, e.dpt])).toEqual([
        ['198.51.100.7', 25],
        text === kern ? ['198.51.100.7', 25] : ['192.0.2.53', 53],
      ]);
    }
  });

  test('stdin', async () => {
    const r = await read([{ kind: 'stdin', chunks: async function* () { yield `${syslog(`EGRESS D:smtp ${TCP4}`)}\n`; } }]);
    expect(r.events).toHaveLength(1);
  });

  test('/dev/kmsg records: continuation lines are not messages', async () => {
    const d = tmp();
    writeFileSync(join(d, 'kmsg'), [kmsg(`EGRESS D:smtp ${TCP4}`, 1, 5_000_000), ' SUBSYSTEM=net', ' DEVICE=+net:eth0', kmsg('eth0: link up', 2), ''].join('\n'));
    const r = await read([{ kind: 'kmsg', path: join(d, 'kmsg') }]);
    expect(r.events).toHaveLength(1);
    expect(r.events[0]!.time).toBe(Date.UTC(2026, 10, 23) + 5000);
  });

  test('--journal spawns journalctl -k -o json (with --since) through the Execer', async () => {
    const x = fakeExecer(() => ({ stdout: [journal(`EGRESS D:smtp ${TCP4}`), journal('eth0: link up'), ''].join('\n') }));
    const r = await read([{ kind: 'journal' }], { execer: x, since: Date.UTC(2026, 0, 1) });
    expect(x.calls.map((c) => c.argv)).toEqual([['journalctl', '-k', '-o', 'json', '--no-pager', `--since=@${Date.UTC(2026, 0, 1) / 1000}`]]);
    expect(r.events).toHaveLength(1);
    expect(r.counts.lines).toBe(2);
  });

  test('journalctl missing or failing is a ReadError', async () => {
    await expect(read([{ kind: 'journal' }], { execer: fakeExecer(() => ({ code: 127 })) })).rejects.toThrow(/journalctl is not installed/);
    await expect(read([{ kind: 'journal' }], { execer: fakeExecer(() => ({ code: 1, stderr: 'No journal files were found.\n' })) })).rejects.toThrow(/exited 1: No journal files/);
  });
});

describe('--follow', () => {
  const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
  // The bound is only a backstop below the test timeout: how fast the reader polls decides nothing.
  async function until(cond: () => boolean, ms = 50_000) {
    const end = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > end) throw new Error(`timed out waiting (${ms} ms)`);
      await wait(10);
    }
  }
  const line = (port: number) => iso(`EGRESS D:x ${TCP4.replace('DPT=25', `DPT=${port}`)}`) + '\n';

  test('reads what is appended, survives rotation by rename and by truncation, waits for unfinished lines', async () => {
    const d = tmp();
    const path = join(d, 'kern.log');
    writeFileSync(path, line(1));
    const ac = new AbortController();
    const ports: number[] = [];
    const reader = new LogReader([file(path)], opts({ follow: true, signal: ac.signal, pollMs: 10 }), (e) => ports.push(e.dpt!));
    const done = reader.run();
    await until(() => ports.length === 1);
    appendFileSync(path, line(2));
    appendFileSync(path, line(3).slice(0, 40)); // half a line: not read yet
    await until(() => ports.length === 2);
    await wait(50);
    expect(ports).toEqual([1, 2]);
    appendFileSync(path, line(3).slice(40));
    await until(() => ports.length === 3);
    // logrotate's default: rename, then a new file (what was written to the old one after the last poll is still read).
    appendFileSync(path, line(4));
    renameSync(path, path + '.1');
    writeFileSync(path, line(5));
    await until(() => ports.length === 5);
    // copytruncate: the same file, emptied.
    truncateSync(path, 0);
    await wait(30);
    appendFileSync(path, line(6));
    await until(() => ports.length === 6);
    ac.abort();
    const counts = await done;
    expect(ports).toEqual([1, 2, 3, 4, 5, 6]);
    expect(counts.rotations).toBe(2);
  });
});
