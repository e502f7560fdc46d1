import { describe, expect, test } from 'vitest';
import { DEFAULT_FIELDS, looksLikePfirewall, parseLine, parsePfirewall } from './pfirewall.js';

const HEADER = [
  '#Version: 1.5',
  '#Software: Microsoft Windows Firewall',
  '#Time Format: Local',
  '#Fields: date time action protocol src-ip dst-ip src-port dst-port size tcpflags tcpsyn tcpack tcpwin icmptype icmpcode info path pid',
  '',
  '',
].join('\r\n');

describe('parsePfirewall', () => {
  test('a Windows 10/11 log: header, outbound drops and allows, CRLF, pid', () => {
    const log = parsePfirewall(
      HEADER +
        [
          '2026-05-30 10:00:01 DROP TCP 192.0.2.10 198.51.100.7 50123 25 52 S 1234567 0 64240 - - - SEND 4321',
          '2026-05-30 10:00:02 ALLOW UDP 192.0.2.10 192.0.2.53 53000 53 0 - - - - - - - SEND 1000',
          '2026-05-30 10:00:03 DROP ICMP 192.0.2.10 203.0.113.9 - - 84 - - - - 8 0 - SEND 77',
          '2026-05-30 10:00:04 DROP TCP 2001:db8::10 2001:db8:dead::1 50124 443 0 - - - - - - - SEND -',
          '2026-05-30 10:00:05 DROP UDP fe80::1%12 ff02::c 1900 1900 0 - - - - - - - RECEIVE 4',
          '',
        ].join('\r\n'),
    );
    expect(log.malformed).toBe(0);
    expect(log.skipped).toBe(5);
    expect(log.events).toEqual([
      { line: 6, time: '2026-05-30T10:00:01', utc: false, action: 'DROP', protocol: 'tcp', protocolNumber: 6, family: 'ipv4', src: '192.0.2.10', dst: '198.51.100.7', srcPort: 50123, dstPort: 25, size: 52, tcpFlags: 'S', direction: 'send', pid: 4321 },
      { line: 7, time: '2026-05-30T10:00:02', utc: false, action: 'ALLOW', protocol: 'udp', protocolNumber: 17, family: 'ipv4', src: '192.0.2.10', dst: '192.0.2.53', srcPort: 53000, dstPort: 53, size: 0, direction: 'send', pid: 1000 },
      { line: 8, time: '2026-05-30T10:00:03', utc: false, action: 'DROP', protocol: 'icmp', protocolNumber: 1, family: 'ipv4', src: '192.0.2.10', dst: '203.0.113.9', icmpType: 8, icmpCode: 0, size: 84, direction: 'send', pid: 77 },
      { line: 9, time: '2026-05-30T10:00:04', utc: false, action: 'DROP', protocol: 'tcp', protocolNumber: 6, family: 'ipv6', src: '2001:db8::10', dst: '2001:db8:dead::1', srcPort: 50124, dstPort: 443, size: 0, direction: 'send' },
      { line: 10, time: '2026-05-30T10:00:05', utc: false, action: 'DROP', protocol: 'udp', protocolNumber: 17, family: 'ipv6', src: 'fe80::1', dst: 'ff02::c', srcPort: 1900, dstPort: 1900, size: 0, direction: 'receive', pid: 4 },
    ]);
  });

  test('no #Fields: line: the 1.5 columns; other actions are skipped, not malformed', () => {
    const log = parsePfirewall([
      '2026-05-30 10:00:01 DROP TCP 192.0.2.10 198.51.100.7 50123 25 52 S 1 0 64240 - - - SEND',
      '2026-05-30 10:00:02 INFO-EVENTS-LOST - - - - - - - - - - - - - 17 -',
      '2026-05-30 10:00:03 OPEN TCP 192.0.2.10 198.51.100.7 50125 80 - - - - - - - - -',
    ]);
    expect(log.events.map((e) => [e.line, e.action, e.dstPort, e.direction])).toEqual([[1, 'DROP', 25, 'send']]);
    expect([log.skipped, log.malformed]).toEqual([2, 0]);
  });

  test('a #Fields: line that reorders or drops columns is followed, also when it changes mid-file', () => {
    const log = parsePfirewall(
      ['#Fields: date time action protocol src-ip dst-ip dst-port path', '2026-05-30 10:00:01 DROP 17 192.0.2.1 192.0.2.2 123 SEND', '#Fields: time date path action protocol dst-ip src-ip', '10:00:02 2026-05-30 SEND ALLOW 2 192.0.2.2 192.0.2.1'].join('\n'),
    );
    expect(log.events.map((e) => [e.time, e.action, e.protocol, e.protocolNumber, e.dstPort, e.src])).toEqual([
      ['2026-05-30T10:00:01', 'DROP', 'udp', 17, 123, '192.0.2.1'],
      ['2026-05-30T10:00:02', 'ALLOW', 'other', 2, undefined, '192.0.2.1'],
    ]);
  });

  test('#Time Format: UTC is carried on each event', () => {
    const log = parsePfirewall(['#Time Format: UTC', '2026-05-30 10:00:01 DROP TCP 192.0.2.10 198.51.100.7 1 2 0 - - - - - - - SEND'].join('\n'));
    expect(log.events[0]!.utc).toBe(true);
  });

  test.each([
    ['2026-05-30 10:00:01 DROP TCP 192.0.2.10', '5 columns, the #Fields: line names 17'],
    ['2026-05-30 10:00:01 DROP TCP 192.0.2.999 198.51.100.7 1 2 0 - - - - - - - SEND', 'src-ip "192.0.2.999"'],
    ['2026-05-30 10:00:01 DROP TCP 192.0.2.10 2001:db8::1 1 2 0 - - - - - - - SEND', 'source and destination are of different families'],
    ['2026-05-30 10:00:01 DROP TCP 192.0.2.10 198.51.100.7 1 70000 0 - - - - - - - SEND', 'dst-port "70000"'],
    ['2026-05-30 10:00:01 DROP GRE 192.0.2.10 198.51.100.7 - - 0 - - - - - - - SEND', 'protocol "GRE"'],
    ['30/05/2026 10:00:01 DROP TCP 192.0.2.10 198.51.100.7 1 2 0 - - - - - - - SEND', 'date and time "30/05/2026 10:00:01"'],
    ['2026-05-30 10:00:01 drop? TCP 192.0.2.10 198.51.100.7 1 2 0 - - - - - - - SEND', 'action "drop?"'],
  ])('malformed: %s', (line, reason) => {
    const log = parsePfirewall([line]);
    expect(log.events).toEqual([]);
    expect(log.malformed).toBe(1);
    expect(log.problems).toEqual([{ line: 1, reason }]);
  });

  test('problems are capped, the count is not', () => {
    const log = parsePfirewall(Array.from({ length: 50 }, () => 'garbage'));
    expect([log.malformed, log.problems.length]).toEqual([50, 20]);
  });

  test('a #Fields: line without a required column makes its data lines malformed', () => {
    const log = parsePfirewall(['#Fields: date time action protocol src-ip', '2026-05-30 10:00:01 DROP TCP 192.0.2.10'].join('\n'));
    expect(log.problems).toEqual([{ line: 2, reason: 'the #Fields: line has no "dst-ip" column' }]);
  });

  test('a BOM and a trailing newline are not lines', () => {
    const log = parsePfirewall('\uFEFF#Version: 1.5\n2026-05-30 10:00:01 DROP TCP 192.0.2.10 198.51.100.7 1 2 0 - - - - - - - SEND\n');
    expect([log.events.length, log.skipped, log.malformed]).toEqual([1, 1, 0]);
  });
});

test('parseLine alone, with the default columns', () => {
  expect(parseLine('2026-05-30 10:00:01 ALLOW UDP 192.0.2.10 192.0.2.53 5353 53 0 - - - - - - - SEND', DEFAULT_FIELDS)?.dstPort).toBe(53);
});

test.each([
  ['#Version: 1.5\r\n#Software: Microsoft Windows Firewall', true],
  ['#Fields: date time action', true],
  ['#Time Format: Local', true],
  ['\xef\xbb\xbf#Version: 1.5', true], // a UTF-8 BOM, as read.ts decodes bytes (latin1)
  ['\uFEFF#Version: 1.5', true],
  ['# kern.log, copied by hand', false],
  ['2026-05-30T10:00:01+00:00 web1 kernel: EGRESS D:smtp IN= OUT=eth0', false],
  ['\x1f\x8b\x08\x00', false], // gzip magic: only decompressed text can show the header
  ['', false],
])('looksLikePfirewall(%j) is %s', (head, want) => {
  expect(looksLikePfirewall(head)).toBe(want);
});
