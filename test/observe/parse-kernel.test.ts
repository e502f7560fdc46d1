import { describe, expect, test } from 'vitest';
import { isoTime, KernelLineParser } from '../../src/logs/parse-kernel.js';
import { NOW } from '../helpers.js';
import { dmesg, dmesgT, FWD_ICMP6, FWD_OTHER4, FWD_TCP4, FWD_TCP6, FWD_UDP4, ICMP4, ICMP4_ERR, ICMP6, INBOUND, iso, journal, kmsg, ND6, syslog, TCP4, TCP6, UDP4, UDP4_NOUID } from './lines.js';

const BOOT = Date.UTC(2026, 10, 23, 8, 0, 0);
const parser = (prefixes?: string[]) => new KernelLineParser({ now: NOW.getTime(), bootTimeMs: BOOT, ...(prefixes ? { prefixes } : {}) });
const one = (line: string, prefixes?: string[]) => parser(prefixes).parseLine(line, 'test', 1);

describe('carriers: the time and the message of each log format', () => {
  test.each([
    // NOW is 2026-06-01: "Nov 23" without a year is last November.
    ['kern.log (RFC 3164, local time)', syslog(`EGRESS D:smtp ${TCP4}`), new Date(2025, 10, 23, 9, 14, 42).getTime()],
    ['rsyslog ISO with offset', iso(`EGRESS D:smtp ${TCP4}`), Date.UTC(2026, 10, 23, 8, 14, 42, 123)],
    ['RFC 5424 with PRI', `<4>1 2026-11-23T09:14:42.5Z web1 kernel - - - EGRESS D:smtp ${TCP4}`, Date.UTC(2026, 10, 23, 9, 14, 42, 500)],
    ['RFC 3164 with PRI', `<4>${syslog(`EGRESS D:smtp ${TCP4}`)}`, new Date(2025, 10, 23, 9, 14, 42).getTime()],
    ['dmesg (seconds since boot)', dmesg(`EGRESS D:smtp ${TCP4}`, '1738.733213'), BOOT + 1738733.213],
    ['dmesg -T (ctime, local)', dmesgT(`EGRESS D:smtp ${TCP4}`), new Date(2026, 10, 23, 9, 14, 42).getTime()],
    ['dmesg -T, one-digit day', dmesgT(`EGRESS D:smtp ${TCP4}`, 'Tue Nov  3 09:14:42 2026'), new Date(2026, 10, 3, 9, 14, 42).getTime()],
    ['/dev/kmsg record', kmsg(`EGRESS D:smtp ${TCP4}`, 345, 1738426972), BOOT + 1738426.972],
    ['journalctl -o json', journal(`EGRESS D:smtp ${TCP4}`, 1795000000123000), 1795000000123],
    ['no carrier at all', `EGRESS D:smtp ${TCP4}`, undefined],
  ])('%s', (_name, line, time) => {
    const e = one(line);
    expect(e).toMatchObject({ prefix: 'EGRESS ', tag: 'D', rule: 'smtp', verdict: 'denied', dst: '198.51.100.7', dpt: 25, uid: 33 });
    if (time === undefined) expect(e!.time).toBeUndefined();
    else expect(e!.time).toBeCloseTo(time, 0);
  });

  test('a prefix that ends like the previous line\'s is still told apart', () => {
    const p = parser();
    const prefixes = [`EGRESS D:smtp ${TCP4}`, `MY EGRESS D:smtp ${TCP4}`, `EGRESS D:smtp ${TCP4}`, `[UFW] EGRESS D:smtp ${TCP4}`, `EGRESS D:smtp ${TCP4}`, `FW: EGRESS D:smtp ${TCP4}`].map((m) => p.parseLine(syslog(m))!.prefix);
    expect(prefixes).toEqual(['EGRESS ', 'MY EGRESS ', 'EGRESS ', '[UFW] EGRESS ', 'EGRESS ', 'FW: EGRESS ']);
    expect([dmesg(`EGRESS D:x ${TCP4}`), kmsg(`EGRESS D:x ${TCP4}`), `EGRESS D:x ${TCP4}`].map((l) => p.parseLine(l)!.prefix)).toEqual(['EGRESS ', 'EGRESS ', 'EGRESS ']);
  });

  test('a syslog line without the kernel stamp still yields the prefix', () => {
    expect(one(`Nov 23 09:14:42 web1 kernel: NFT-EGRESS-DROP P:- ${TCP4}`)).toMatchObject({ prefix: 'NFT-EGRESS-DROP ', tag: 'P' });
  });

  test('DNS that bypassed the forwarder (dns.proxy) is tag B, b in audit mode', () => {
    expect(one(`EGRESS B:- ${UDP4}`)).toMatchObject({ tag: 'B', verdict: 'denied', dpt: 53 });
    expect(one(`EGRESS b:- ${UDP4}`)).toMatchObject({ tag: 'b', verdict: 'would-deny', dpt: 53 });
    expect(one(`EGRESS B:- ${UDP4}`)!.rule).toBeUndefined();
  });

  test('journal MESSAGE stored as bytes (not UTF-8) is read too', () => {
    const line = JSON.stringify({ __REALTIME_TIMESTAMP: '1795000000000000', MESSAGE: [...Buffer.from(`EGRESS p:- ${UDP4}`)] });
    expect(one(line)).toMatchObject({ tag: 'p', verdict: 'would-deny', dpt: 53 });
  });
});

describe('packets: families, protocols, owners', () => {
  test.each([
    ['IPv4 TCP SYN', TCP4, { family: 'ipv4', proto: 'tcp', protoNum: 6, src: '192.0.2.1', dst: '198.51.100.7', spt: 57408, dpt: 25, uid: 33, gid: 33, out: 'eth0' }],
    ['IPv4 UDP', UDP4, { family: 'ipv4', proto: 'udp', protoNum: 17, dst: '203.0.113.9', spt: 45089, dpt: 53, uid: 0 }],
    ['IPv4 ICMP echo: ID after PROTO is the echo id', ICMP4, { proto: 'icmp', protoNum: 1, icmpType: 8, icmpCode: 0, icmpId: 31283, uid: 0 }],
    ['IPv6 expanded addresses are made canonical', ICMP6, { family: 'ipv6', proto: 'icmp', protoNum: 58, dst: '2001:db8::99', icmpType: 128, icmpId: 31284, uid: 0 }],
    ['IPv6 TCP', TCP6, { family: 'ipv6', proto: 'tcp', dst: '2001:db8::99', dpt: 443, uid: 1001, gid: 1001 }],
    ['IPv6 neighbour solicitation: no socket, no UID', ND6, { proto: 'icmp', icmpType: 135 }],
    ['no --log-uid', UDP4_NOUID, { proto: 'udp', dpt: 123 }],
    ['ICMP error: the quoted packet is not read (the UID after it is)', ICMP4_ERR, { proto: 'icmp', icmpType: 3, icmpCode: 3, dst: '198.51.100.2', uid: 0 }],
    ['another protocol by number', 'IN= OUT=eth0 SRC=192.0.2.1 DST=192.0.2.9 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=47 UID=0 GID=0 ', { proto: 'other', protoNum: 47, uid: 0 }],
    ['SCTP', 'IN= OUT=eth0 SRC=192.0.2.1 DST=192.0.2.9 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=SCTP SPT=9 DPT=3868 ', { proto: 'sctp', protoNum: 132, dpt: 3868 }],
  ])('%s', (_name, fields, want) => {
    const e = one(`EGRESS P:- ${fields}`);
    expect(e).toMatchObject(want);
    if (!('uid' in want)) expect(e!.uid).toBeUndefined();
  });
});

describe('selection: egress tags, --prefix, other rules', () => {
  test.each([
    ['enforce, deny rule', 'EGRESS D:smtp ', { tag: 'D', rule: 'smtp', verdict: 'denied' }],
    ['enforce, default', 'EGRESS P:- ', { tag: 'P', verdict: 'denied' }],
    ['audit, deny rule', 'EGRESS d:metadata ', { tag: 'd', rule: 'metadata', verdict: 'would-deny' }],
    ['audit, default', 'EGRESS p:- ', { tag: 'p', verdict: 'would-deny' }],
    ['a cut rule name', 'EGRESS-PROD-HOST-01 D:very-long-r~3fa ', { rule: 'very-long-r~3fa', prefix: 'EGRESS-PROD-HOST-01 ' }],
    ['no prefix at all', 'D:dns ', { tag: 'D', rule: 'dns', prefix: '' }],
  ])('%s', (_n, prefix, want) => {
    expect(one(syslog(`${prefix}${UDP4}`))).toMatchObject(want);
  });

  test('lines of another LOG rule are counted as other unless --prefix asks for them', () => {
    const p = parser();
    expect(p.parseLine(syslog(`NFT-EGRESS-DROP ${TCP4}`))).toBeUndefined();
    expect(p.counts).toMatchObject({ lines: 1, netfilter: 1, other: 1, events: 0 });
    for (const prefix of ['NFT-EGRESS-DROP ', 'NFT-EGRESS-DROP']) {
      const e = one(syslog(`NFT-EGRESS-DROP ${TCP4}`), [prefix]);
      expect(e).toMatchObject({ prefix, verdict: 'denied', dpt: 25 });
      expect(e!.tag).toBeUndefined();
    }
  });

  test('--prefix also takes tagged lines of that prefix, and the whole prefix with its tag', () => {
    expect(one(syslog(`EGRESS D:smtp ${TCP4}`), ['EGRESS '])).toMatchObject({ prefix: 'EGRESS ', tag: 'D', rule: 'smtp' });
    expect(one(syslog(`EGRESS D:smtp ${TCP4}`), ['EGRESS D:smtp '])).toMatchObject({ prefix: 'EGRESS ', tag: 'D', rule: 'smtp' });
    const p = parser(['OTHER ']);
    expect(p.parseLine(syslog(`EGRESS D:smtp ${TCP4}`))).toBeUndefined();
    expect(p.counts.other).toBe(1);
  });

  test('a non-ASCII --prefix matches its UTF-8 bytes and is reported as typed', () => {
    const latin1 = Buffer.from(`SORTIE-É ${TCP4}`, 'utf8').toString('latin1');
    expect(one(latin1, ['SORTIE-É '])).toMatchObject({ prefix: 'SORTIE-É ' });
  });

  test('inbound packets are not egress', () => {
    const p = parser(['[UFW BLOCK] ']);
    expect(p.parseLine(syslog(`[UFW BLOCK] ${INBOUND}`))).toBeUndefined();
    expect(p.counts).toMatchObject({ inbound: 1, events: 0 });
  });

  test('a packet with IN= and OUT= empty (nothing routed it out) is inbound, even tagged', () => {
    const p = parser();
    expect(p.parseLine(syslog(`EGRESS D:x ${FWD_TCP4.replace('OUT=up0', 'OUT=')}`))).toBeUndefined();
    expect(p.parseLine(syslog(`EGRESS D:x IN=br-test OUT=`))).toBeUndefined();
    expect(p.counts).toMatchObject({ inbound: 2, events: 0, malformed: 0 });
  });

  test('lines that are not netfilter LOG lines cost nothing and are only counted', () => {
    const p = parser();
    for (const l of ['Nov 23 09:18:02 web1 CRON[123]: (root) CMD (run-parts)', '', 'kernel: OUT of memory', '{"MESSAGE":"hello"}']) expect(p.parseLine(l)).toBeUndefined();
    expect(p.counts).toMatchObject({ lines: 4, netfilter: 0, malformed: 0 });
  });
});

describe('forwarded packets (SPEC §6): IN= and OUT= both set', () => {
  test.each([
    ['IPv4 TCP, denied by a rule', `EGRESS D:registry ${FWD_TCP4}`, { tag: 'D', rule: 'registry', verdict: 'denied', family: 'ipv4', in: 'br-test', out: 'up0', src: '198.51.100.2', dst: '203.0.113.9', proto: 'tcp', spt: 43210, dpt: 443 }],
    ['IPv4 UDP, denied by the forward default', `EGRESS P:- ${FWD_UDP4}`, { tag: 'P', verdict: 'denied', in: 'br-test', src: '198.51.100.3', dst: '203.0.113.53', proto: 'udp', dpt: 53 }],
    ['IPv6 TCP, audit mode (src as logged, dst canonical)', `EGRESS p:- ${FWD_TCP6}`, { tag: 'p', verdict: 'would-deny', family: 'ipv6', in: 'br-test', src: '2001:0db8:0001:0000:0000:0000:0000:0002', dst: '2001:db8:2::9', dpt: 443 }],
    ['IPv6 ICMP echo, audit mode, a rule', `EGRESS d:no-ping ${FWD_ICMP6}`, { tag: 'd', rule: 'no-ping', verdict: 'would-deny', family: 'ipv6', in: 'br-test', proto: 'icmp', icmpType: 128, icmpId: 77 }],
    ['from no source, denied (forward.unlisted: deny)', `EGRESS U:- ${FWD_OTHER4}`, { tag: 'U', verdict: 'denied', in: 'tap-vm1', src: '192.0.2.77', dpt: 443 }],
    ['from no source, let through (warn, or audit mode)', `EGRESS u:- ${FWD_OTHER4}`, { tag: 'u', verdict: 'would-deny', in: 'tap-vm1', src: '192.0.2.77', dpt: 443 }],
  ])('%s', (_n, msg, want) => {
    for (const line of [syslog(msg), iso(msg), kmsg(msg), journal(msg)]) {
      const p = parser();
      const e = p.parseLine(line, 'test', 1);
      expect(e).toMatchObject({ ...want, prefix: 'EGRESS ' });
      expect(e!.uid).toBeUndefined();
      expect(e!.rule).toBe('rule' in want ? want.rule : undefined);
      expect(p.counts).toMatchObject({ events: 1, inbound: 0 });
    }
  });

  test('a host line has no input interface; U and u on the next line keep the prefix cache honest', () => {
    const p = parser();
    const es = [`EGRESS D:smtp ${TCP4}`, `EGRESS u:- ${FWD_OTHER4}`, `EGRESS P:- ${FWD_TCP6}`, `EGRESS p:- ${UDP4}`].map((m) => p.parseLine(syslog(m))!);
    expect(es.map((e) => [e.tag, e.in, e.prefix])).toEqual([
      ['D', undefined, 'EGRESS '],
      ['u', 'tap-vm1', 'EGRESS '],
      ['P', 'br-test', 'EGRESS '],
      ['p', undefined, 'EGRESS '],
    ]);
  });

  test('--prefix selects untagged forwarded lines of another LOG rule too', () => {
    expect(one(syslog(`DOCKER-DROP ${FWD_TCP4}`), ['DOCKER-DROP '])).toMatchObject({ prefix: 'DOCKER-DROP ', verdict: 'denied', in: 'br-test', tag: undefined });
  });

  test('a forwarded line cut short is malformed, not inbound', () => {
    const p = parser();
    expect(p.parseLine(syslog(`EGRESS D:x ${FWD_TCP4.slice(0, FWD_TCP4.indexOf(' DST='))}`), 'kern.log', 3)).toBeUndefined();
    expect(p.counts).toMatchObject({ malformed: 1, inbound: 0 });
  });
});

describe('only the kernel speaks for netfilter (D5)', () => {
  test.each([
    ['another program\'s syslog tag', `Nov 23 09:14:42 host nobody[1234]: EGRESS D:smtp ${TCP4}`],
    ['a message with text before it', `Nov 23 09:14:43 host myapp: hello EGRESS P:- ${TCP4}`],
    ['a tag that only starts with kernel', `Nov 23 09:14:43 host kernelish: EGRESS D:smtp ${TCP4}`],
    ['ISO syslog from logger', `2026-11-23T09:14:42.123456+01:00 host logger: EGRESS D:smtp ${TCP4}`],
    ['RFC 5424 with another APP-NAME', `<13>1 2026-11-23T09:14:42.5Z web1 nobody - - - EGRESS D:smtp ${TCP4}`],
    ['a journal record sent through syslog', JSON.stringify({ _TRANSPORT: 'syslog', SYSLOG_IDENTIFIER: 'nobody', MESSAGE: `EGRESS P:- ${TCP4}`, __REALTIME_TIMESTAMP: '1795000000123000' })],
  ])('%s is counted as other, never an event', (_n, line) => {
    const p = parser();
    expect(p.parseLine(line, 'test', 1)).toBeUndefined();
    expect(p.counts).toMatchObject({ other: 1, events: 0 });
  });

  test('the same lines from the kernel are events', () => {
    for (const line of [`Nov 23 09:14:42 host kernel: EGRESS D:smtp ${TCP4}`, `2026-11-23T09:14:42.123456+01:00 host kernel: [ 12.5] EGRESS D:smtp ${TCP4}`, JSON.stringify({ _TRANSPORT: 'kernel', MESSAGE: `EGRESS D:smtp ${TCP4}`, __REALTIME_TIMESTAMP: '1795000000123000' })])
      expect(one(line)).toMatchObject({ tag: 'D', rule: 'smtp' });
  });
});

describe('impossible time stamps are malformed lines, not events (D18)', () => {
  test.each([
    ['Feb 30 25:61:59 (RFC 3164)', syslog(`EGRESS D:smtp ${TCP4}`, 'Feb 30 25:61:59')],
    ['2026-02-30 (ISO)', iso(`EGRESS D:smtp ${TCP4}`, '2026-02-30T09:14:42Z')],
    ['9999-99-99T99:99:99Z', iso(`EGRESS D:smtp ${TCP4}`, '9999-99-99T99:99:99Z')],
    ['seconds since boot of 1e20 (dmesg)', dmesg(`EGRESS D:smtp ${TCP4}`, '99999999999999999999.1')],
    ['microseconds since boot of 1e23 (kmsg)', `4,345,100000000000000000000000,-;EGRESS D:smtp ${TCP4}`],
    ['a journal stamp of 1e400', journal(`EGRESS D:smtp ${TCP4}`, '1e400' as unknown as number)],
  ])('%s', (_n, line) => {
    const p = parser();
    expect(p.parseLine(line, 'test', 7)).toBeUndefined();
    expect(p.counts).toMatchObject({ events: 0, malformed: 1 });
    expect(p.counts.problems).toEqual([{ where: 'test', line: 7, reason: 'impossible time stamp' }]);
  });

  test('Feb 29 and a leap second are possible', () => {
    expect(one(syslog(`EGRESS D:smtp ${TCP4}`, 'Feb 29 23:59:60'))).toMatchObject({ rule: 'smtp' });
  });
});

describe('malformed and truncated lines are skipped and counted, never fatal', () => {
  test.each([
    ['cut inside DPT', syslog(`EGRESS D:smtp ${TCP4.slice(0, TCP4.indexOf('DPT=') + 5)}`), /DPT/],
    ['cut before PROTO', syslog(`EGRESS D:smtp ${TCP4.slice(0, TCP4.indexOf('PROTO'))}`), /PROTO/],
    ['cut before DST', syslog('EGRESS D:smtp IN= OUT=eth0 SRC=192.0.2.1'), /DST/],
    ['cut inside UID', syslog(`EGRESS D:smtp ${TCP4.slice(0, TCP4.indexOf('GID='))}`), /UID= without GID=/],
    ['garbled address', syslog(`EGRESS D:smtp ${TCP4.replace('DST=198.51.100.7', 'DST=198.51.1OO.7')}`), /bad destination/],
    ['garbled UID', syslog(`EGRESS D:smtp ${TCP4.replace('UID=33', 'UID=3x')}`), /bad UID/],
    ['ICMP without CODE', syslog(`EGRESS D:ping ${ICMP4.slice(0, ICMP4.indexOf('CODE'))}`), /TYPE=\/CODE=/],
    ['journal record cut short', journal(`EGRESS D:smtp ${TCP4}`).slice(0, 200), /JSON/],
  ])('%s', (_n, line, reason) => {
    const p = parser();
    expect(p.parseLine(line, 'kern.log', 7)).toBeUndefined();
    expect(p.counts.malformed).toBe(1);
    expect(p.counts.problems[0]).toMatchObject({ where: 'kern.log', line: 7 });
    expect(p.counts.problems[0]!.reason).toMatch(reason);
  });

  test('a line whose trailing space a syslog daemon trimmed is fine', () => {
    expect(one(syslog(`EGRESS D:smtp ${TCP4.trimEnd()}`))).toMatchObject({ uid: 33, gid: 33 });
  });
});

describe('--since', () => {
  test('older events are counted, not returned; lines without a time keep the last time seen', () => {
    const p = new KernelLineParser({ now: NOW.getTime(), since: Date.UTC(2026, 10, 23, 9, 0, 0) });
    expect(p.parseLine(iso(`EGRESS D:smtp ${TCP4}`, '2026-11-23T08:59:59Z'))).toBeUndefined();
    expect(p.parseLine(`EGRESS D:smtp ${TCP4}`)).toBeUndefined(); // inherits 08:59:59
    expect(p.parseLine(iso(`EGRESS D:smtp ${TCP4}`, '2026-11-23T09:00:00Z'))).toMatchObject({ time: Date.UTC(2026, 10, 23, 9, 0, 0), rule: 'smtp', dst: '198.51.100.7', dpt: 25 });
    expect(p.counts.beforeSince).toBe(2);
  });
});

test.each([
  ['2026-11-23T09:14:42Z', Date.UTC(2026, 10, 23, 9, 14, 42)],
  ['2026-11-23T09:14:42.123456+01:00', Date.UTC(2026, 10, 23, 8, 14, 42, 123)],
  ['2026-11-23T09:14:42-0530', Date.UTC(2026, 10, 23, 14, 44, 42)],
  ['2026-11-23 09:14:42', new Date(2026, 10, 23, 9, 14, 42).getTime()],
  ['2026-13-23T09:14:42Z', undefined],
])('isoTime(%j)', (s, want) => {
  expect(isoTime(s, 0, s.length)).toBe(want);
});
