import { describe, expect, test } from 'vitest';
import dnsPacket from 'dns-packet';
import { a, aaaa, cname, query, respond } from './dns.testkit.js';
import { answers, chainAddresses, emptyAnswer, nameText, parseQuery, parseResponse, RCODE, readName, rebuildAnswer, sameQuestion, truncatedAnswer, WireError } from './wire.js';

const hdr = (qd = 1, an = 0, flags = 0x0100) => {
  const b = Buffer.alloc(12);
  b.writeUInt16BE(0x1234, 0);
  b.writeUInt16BE(flags, 2);
  b.writeUInt16BE(qd, 4);
  b.writeUInt16BE(an, 6);
  return b;
};
const q = (...labels: string[]) => Buffer.concat([...labels.flatMap((l) => [Buffer.from([l.length]), Buffer.from(l, 'latin1')]), Buffer.from([0, 0, 1, 0, 1])]);

describe('parseQuery', () => {
  test('reads a query made by dns-packet, with its EDNS size', () => {
    const p = parseQuery(query('Deb.Debian.Org', 'AAAA', 1232));
    expect(p).toMatchObject({ labels: ['Deb', 'Debian', 'Org'], qtype: 28, qclass: 1, udpSize: 1232, opcode: 0 });
    expect(parseQuery(query('x.org')).udpSize).toBe(512);
    expect(parseQuery(query('x.org', 'A', 100)).udpSize).toBe(512);
  });

  test.each([
    ['empty', Buffer.alloc(0)],
    ['short', Buffer.alloc(11)],
    ['no question', hdr(0)],
    ['two questions', Buffer.concat([hdr(2), q('a'), q('b')])],
    ['a response', Buffer.concat([hdr(1, 0, 0x8100), q('a')])],
    ['question cut short', Buffer.concat([hdr(), q('abc').subarray(0, 6)])],
    ['trailing bytes', Buffer.concat([hdr(), q('a'), Buffer.from([0])])],
    ['an answer count with no answer', Buffer.concat([hdr(1, 1), q('a')])],
    ['pointer to itself', Buffer.concat([hdr(), Buffer.from([0xc0, 12, 0, 1, 0, 1])])],
    ['pointer forward', Buffer.concat([hdr(), Buffer.from([0xc0, 14, 0, 1, 0, 1])])],
    ['reserved label type', Buffer.concat([hdr(), Buffer.from([0x41, 0, 0, 1, 0, 1])])],
    ['name over 255 bytes', Buffer.concat([hdr(), q(...Array(5).fill('x'.repeat(63)))])],
  ])('refuses %s', (_, buf) => expect(() => parseQuery(buf)).toThrow(WireError));

  test('a label may hold any byte; it stays one label', () => {
    const p = parseQuery(Buffer.concat([hdr(), q('a.b', '\u00ff\u0000', 'org')]));
    expect(p.labels).toEqual(['a.b', '\u00ff\u0000', 'org']);
    expect(nameText(p.labels)).toBe('a\\046b.\\255\\000.org');
  });
});

describe('readName', () => {
  test('follows backward pointers and reports where the name ended', () => {
    const buf = Buffer.concat([Buffer.from([3]), Buffer.from('www'), Buffer.from([7]), Buffer.from('example'), Buffer.from([0]), Buffer.from([1, 0x78, 0xc0, 4])]);
    expect(readName(buf, 0)).toEqual({ labels: ['www', 'example'], end: 13 });
    expect(readName(buf, 13)).toEqual({ labels: ['x', 'example'], end: 17 });
  });
  test('a chain of pointers cannot loop', () => {
    const buf = Buffer.from([0xc0, 2, 0xc0, 0]);
    expect(() => readName(buf, 2)).toThrow(WireError);
  });
});

describe('responses', () => {
  const qmsg = query('alias.example.com');
  const qp = parseQuery(qmsg);
  const resp = dnsPacket.encode(respond(dnsPacket.decode(qmsg), [cname('ALIAS.example.com', 'edge.test'), a('edge.test', '198.51.100.1', 9), aaaa('edge.test', '2001:db8::1'), a('other.test', '203.0.113.1')]));

  test('answers(): ID, QR and the question (case-insensitively) must match', () => {
    expect(answers(resp, qp.id, qp.question)).toBe(true);
    expect(answers(resp, (qp.id + 1) & 0xffff, qp.question)).toBe(false);
    expect(answers(qmsg, qp.id, qp.question)).toBe(false);
    expect(answers(resp, qp.id, parseQuery(query('alias.example.org')).question)).toBe(false);
    expect(sameQuestion(Buffer.from('\x01A'), Buffer.from('\x01a'))).toBe(true);
    expect(sameQuestion(Buffer.from('\x01\xc1'), Buffer.from('\x01\xe1'))).toBe(false);
  });

  test('chainAddresses follows the CNAME chain (names compressed by dns-packet, case folded)', () => {
    const m = parseResponse(resp);
    expect(chainAddresses(resp, m, qp.labels).map((f) => [f.family, f.address, f.ttl])).toEqual([
      ['ipv4', '198.51.100.1', 9],
      ['ipv6', '2001:db8::1', 30],
    ]);
  });

  test('rebuildAnswer keeps what it is told, decompresses CNAME targets, and dns-packet reads the result', () => {
    const m = parseResponse(resp);
    const out = rebuildAnswer(resp, m, (rr) => rr.type !== 28);
    const d = dnsPacket.decode(out);
    expect(d.answers!.map((x) => [x.type, x.name, (x as { data: unknown }).data])).toEqual([
      ['CNAME', 'ALIAS.example.com', 'edge.test'],
      ['A', 'edge.test', '198.51.100.1'],
      ['A', 'other.test', '203.0.113.1'],
    ]);
    expect(d.id).toBe(qp.id);
  });

  test('made-up answers echo the question and the ID', () => {
    for (const rc of [RCODE.REFUSED, RCODE.SERVFAIL, RCODE.NOERROR]) {
      const d = dnsPacket.decode(emptyAnswer(qp, rc)) as unknown as dnsPacket.Packet & { rcode: string };
      expect(d).toMatchObject({ id: qp.id, type: 'response', questions: [{ name: 'alias.example.com', type: 'A' }], answers: [] });
      expect(d.rcode).toBe(['NOERROR', '', 'SERVFAIL', '', '', 'REFUSED'][rc]);
    }
    const tc = truncatedAnswer(qp, resp);
    expect(tc.readUInt16BE(2) & 0x0200).toBeTruthy();
    expect(dnsPacket.decode(tc).answers).toEqual([]);
  });
});
