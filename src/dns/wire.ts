/**
 * DNS wire format, read and written by hand (RFC 1035, RFC 6891 for EDNS).
 *
 * Why not dns-packet here: it joins labels with "." and decodes label bytes
 * as UTF-8, so a label holding a dot or a non-UTF-8 byte would change on a
 * round trip, and the forwarder must never confuse one name with another.
 * This module keeps labels as the bytes they are (latin1 strings), follows
 * compression pointers only backwards (no loops), and throws `WireError` for
 * anything it cannot read, which the caller counts as malformed.
 *
 * The forwarder passes upstream answers through byte for byte (only the ID
 * changes); `rebuildAnswer` is used only when addresses must be left out.
 */
import ipaddr from 'ipaddr.js';

export class WireError extends Error {}

export const TYPE = { A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, AAAA: 28, OPT: 41, SVCB: 64, HTTPS: 65 } as const;
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
const CLASS_IN = 1;
const HEADER = 12;
const MAX_NAME_WIRE = 255;
const FLAG_QR = 0x8000;
const FLAG_AA = 0x0400;
const FLAG_TC = 0x0200;
const FLAG_RD = 0x0100;
const FLAG_RA = 0x0080;
const OPCODE_MASK = 0x7800;

/** A name as its labels: latin1 strings holding the raw bytes, case as on the wire. */
export type Labels = string[];

interface NameRead {
  labels: Labels;
  /** Offset just after the name where it was read (not where a pointer led). */
  end: number;
}

/** Read a (possibly compressed) name at `off`. Pointers must point strictly backwards. */
export function readName(buf: Buffer, off: number): NameRead {
  const labels: Labels = [];
  let pos = off;
  let end = -1;
  let wire = 1;
  let floor = off; // a pointer must land before every place we have already read
  for (;;) {
    if (pos >= buf.length) throw new WireError('name runs past the end');
    const len = buf[pos]!;
    if (len === 0) {
      if (end < 0) end = pos + 1;
      return { labels, end };
    }
    if ((len & 0xc0) === 0xc0) {
      if (pos + 1 >= buf.length) throw new WireError('pointer runs past the end');
      const to = ((len & 0x3f) << 8) | buf[pos + 1]!;
      if (end < 0) end = pos + 2;
      if (to >= floor) throw new WireError('compression pointer does not point backwards');
      floor = to;
      pos = to;
      continue;
    }
    if (len & 0xc0) throw new WireError('reserved label type');
    if (pos + 1 + len > buf.length) throw new WireError('label runs past the end');
    wire += len + 1;
    if (wire > MAX_NAME_WIRE) throw new WireError('name longer than 255 bytes');
    labels.push(buf.toString('latin1', pos + 1, pos + 1 + len));
    pos += 1 + len;
  }
}

/** Uncompressed wire form of a name. */
export function encodeName(labels: Labels): Buffer {
  const parts: Buffer[] = [];
  for (const l of labels) {
    const b = Buffer.from(l, 'latin1');
    parts.push(Buffer.from([b.length]), b);
  }
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

/** A comparison key for a name: its lowercase (ASCII only) wire form, so distinct label splits never collide. */
export function nameKey(labels: Labels): string {
  let k = '';
  for (const l of labels) k += String.fromCharCode(l.length) + l.replace(/[A-Z]+/g, (m) => m.toLowerCase());
  return k;
}

/** Name for logs: lowercase, dot-joined, bytes outside [a-z0-9_-] (and dots inside labels) as \DDD. */
export function nameText(labels: Labels): string {
  if (!labels.length) return '.';
  return labels
    .map((l) => l.replace(/[A-Z]+/g, (m) => m.toLowerCase()).replace(/[^a-z0-9_-]/g, (c) => `\\${c.charCodeAt(0).toString().padStart(3, '0')}`))
    .join('.');
}

export interface Query {
  id: number;
  flags: number;
  opcode: number;
  labels: Labels;
  qtype: number;
  qclass: number;
  /** The question as its raw bytes (name, type, class). */
  question: Buffer;
  /** Largest UDP answer the client takes: 512, or its EDNS size (at least 512). */
  udpSize: number;
}

/**
 * Read a query. Throws `WireError` when it is not one DNS query we can read:
 * too short, a response, not exactly one question, or sections that do not
 * parse to the end of the packet.
 */
export function parseQuery(buf: Buffer): Query {
  if (buf.length < HEADER) throw new WireError('shorter than a DNS header');
  const flags = buf.readUInt16BE(2);
  if (flags & FLAG_QR) throw new WireError('a response, not a query');
  if (buf.readUInt16BE(4) !== 1) throw new WireError('not exactly one question');
  const an = buf.readUInt16BE(6);
  const ns = buf.readUInt16BE(8);
  const ar = buf.readUInt16BE(10);
  const name = readName(buf, HEADER);
  if (name.end + 4 > buf.length) throw new WireError('question runs past the end');
  const qtype = buf.readUInt16BE(name.end);
  const qclass = buf.readUInt16BE(name.end + 2);
  let off = name.end + 4;
  let udpSize = 512;
  for (let i = 0; i < an + ns + ar; i++) {
    const rr = readRr(buf, off);
    if (rr.type === TYPE.OPT && i >= an + ns) udpSize = Math.max(512, rr.klass);
    off = rr.end;
  }
  if (off !== buf.length) throw new WireError('trailing bytes after the last record');
  return { id: buf.readUInt16BE(0), flags, opcode: (flags & OPCODE_MASK) >> 11, labels: name.labels, qtype, qclass, question: buf.subarray(HEADER, name.end + 4), udpSize };
}

export interface Rr {
  labels: Labels;
  type: number;
  klass: number;
  ttl: number;
  rdStart: number;
  rdEnd: number;
  /** Where the record starts and ends in the message. */
  start: number;
  end: number;
}

function readRr(buf: Buffer, off: number): Rr {
  const name = readName(buf, off);
  const p = name.end;
  if (p + 10 > buf.length) throw new WireError('record header runs past the end');
  const rdlen = buf.readUInt16BE(p + 8);
  if (p + 10 + rdlen > buf.length) throw new WireError('record data runs past the end');
  return { labels: name.labels, type: buf.readUInt16BE(p), klass: buf.readUInt16BE(p + 2), ttl: buf.readUInt32BE(p + 4), rdStart: p + 10, rdEnd: p + 10 + rdlen, start: off, end: p + 10 + rdlen };
}

export interface Message {
  id: number;
  flags: number;
  rcode: number;
  question: Buffer;
  answers: Rr[];
  authority: Rr[];
  additional: Rr[];
}

/** Read a whole response (exactly one question). Throws `WireError` when it does not parse. */
export function parseResponse(buf: Buffer): Message {
  if (buf.length < HEADER) throw new WireError('shorter than a DNS header');
  const flags = buf.readUInt16BE(2);
  if (!(flags & FLAG_QR)) throw new WireError('a query, not a response');
  if (buf.readUInt16BE(4) !== 1) throw new WireError('not exactly one question');
  const counts = [buf.readUInt16BE(6), buf.readUInt16BE(8), buf.readUInt16BE(10)];
  const q = readName(buf, HEADER);
  if (q.end + 4 > buf.length) throw new WireError('question runs past the end');
  let off = q.end + 4;
  const sections: Rr[][] = [[], [], []];
  for (let s = 0; s < 3; s++)
    for (let i = 0; i < counts[s]!; i++) {
      const rr = readRr(buf, off);
      sections[s]!.push(rr);
      off = rr.end;
    }
  return { id: buf.readUInt16BE(0), flags, rcode: flags & 0xf, question: buf.subarray(HEADER, q.end + 4), answers: sections[0]!, authority: sections[1]!, additional: sections[2]! };
}

/** Whether two raw questions are the same (names ASCII-case-insensitively, type and class exactly). */
export function sameQuestion(a: Buffer, b: Buffer): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    let x = a[i]!;
    let y = b[i]!;
    if (x >= 0x41 && x <= 0x5a) x |= 0x20;
    if (y >= 0x41 && y <= 0x5a) y |= 0x20;
    if (x !== y) return false;
  }
  return true;
}

/** Whether `resp` is the answer to a query with `id` and `question`: ID, QR and the question all match. */
export function answers(resp: Buffer, id: number, question: Buffer): boolean {
  if (resp.length < HEADER + question.length || resp.readUInt16BE(0) !== id) return false;
  if (!(resp.readUInt16BE(2) & FLAG_QR) || resp.readUInt16BE(4) !== 1) return false;
  return sameQuestion(resp.subarray(HEADER, HEADER + question.length), question);
}

export function isTruncated(resp: Buffer): boolean {
  return resp.length >= 4 && (resp.readUInt16BE(2) & FLAG_TC) !== 0;
}

/** A copy of `msg` with another ID. */
export function withId(msg: Buffer, id: number): Buffer {
  const out = Buffer.from(msg);
  out.writeUInt16BE(id, 0);
  return out;
}

function header(id: number, flags: number, qd: number, an: number, ns: number, ar: number): Buffer {
  const h = Buffer.alloc(HEADER);
  h.writeUInt16BE(id, 0);
  h.writeUInt16BE(flags, 2);
  h.writeUInt16BE(qd, 4);
  h.writeUInt16BE(an, 6);
  h.writeUInt16BE(ns, 8);
  h.writeUInt16BE(ar, 10);
  return h;
}

/** An answer made here, with no records: REFUSED, SERVFAIL, NOTIMP, or NOERROR (NODATA). */
export function emptyAnswer(q: Query, rcode: number): Buffer {
  const flags = FLAG_QR | (q.flags & (OPCODE_MASK | FLAG_RD)) | FLAG_RA | (rcode & 0xf);
  return Buffer.concat([header(q.id, flags, 1, 0, 0, 0), q.question]);
}

/** The TC=1 form of an answer that does not fit the client's UDP size: header and question only. */
export function truncatedAnswer(q: Query, resp: Buffer): Buffer {
  const flags = (resp.readUInt16BE(2) & ~FLAG_AA) | FLAG_TC;
  return Buffer.concat([header(q.id, flags, 1, 0, 0, 0), q.question]);
}

/** Types whose data holds a name that may be compressed (RFC 3597 §4): copied raw they would point at nothing. */
const COMPRESSED_RDATA = new Set([2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 15]);

/**
 * An answer rebuilt with only the answer records `keep` says yes to, no
 * authority records, and the OPT record (if any) of the additional section.
 * Names are written uncompressed; a CNAME's target is decompressed; other
 * records whose data may hold compressed names are left out.
 */
export function rebuildAnswer(resp: Buffer, msg: Message, keep: (rr: Rr) => boolean): Buffer {
  const parts: Buffer[] = [];
  let an = 0;
  for (const rr of msg.answers) {
    if (!keep(rr)) continue;
    let rdata = resp.subarray(rr.rdStart, rr.rdEnd);
    if (rr.type === TYPE.CNAME) rdata = encodeName(readName(resp, rr.rdStart).labels);
    else if (COMPRESSED_RDATA.has(rr.type)) continue;
    const fixed = Buffer.alloc(10);
    fixed.writeUInt16BE(rr.type, 0);
    fixed.writeUInt16BE(rr.klass, 2);
    fixed.writeUInt32BE(rr.ttl, 4);
    fixed.writeUInt16BE(rdata.length, 8);
    parts.push(encodeName(rr.labels), fixed, rdata);
    an++;
  }
  const opt = msg.additional.filter((rr) => rr.type === TYPE.OPT && rr.labels.length === 0);
  for (const rr of opt) parts.push(resp.subarray(rr.start, rr.end));
  return Buffer.concat([header(msg.id, msg.flags, 1, an, 0, opt.length), msg.question, ...parts]);
}

export interface FoundAddress {
  family: 'ipv4' | 'ipv6';
  address: string;
  ttl: number;
  rr: Rr;
}

/**
 * The A and AAAA records (class IN) of the answer section that belong to the
 * query name or to a name in its CNAME chain, in answer order. The chain is
 * followed whatever the order of the CNAME records, and ends when no record
 * extends it (a loop adds nothing new).
 */
export function chainAddresses(resp: Buffer, msg: Message, qname: Labels): FoundAddress[] {
  const chain = new Set([nameKey(qname)]);
  const cnames = msg.answers.filter((rr) => rr.type === TYPE.CNAME && rr.klass === CLASS_IN);
  for (let grew = true; grew; ) {
    grew = false;
    for (const rr of cnames) {
      if (!chain.has(nameKey(rr.labels))) continue;
      const target = nameKey(readName(resp, rr.rdStart).labels);
      if (!chain.has(target)) {
        chain.add(target);
        grew = true;
      }
    }
  }
  const out: FoundAddress[] = [];
  for (const rr of msg.answers) {
    if (rr.klass !== CLASS_IN || !chain.has(nameKey(rr.labels))) continue;
    const data = resp.subarray(rr.rdStart, rr.rdEnd);
    if (rr.type === TYPE.A && data.length === 4) out.push({ family: 'ipv4', address: Array.from(data).join('.'), ttl: rr.ttl, rr });
    else if (rr.type === TYPE.AAAA && data.length === 16) out.push({ family: 'ipv6', address: ipaddr.fromByteArray(Array.from(data)).toString(), ttl: rr.ttl, rr });
  }
  return out;
}

export const QTYPE_NAMES: Record<number, string> = { 1: 'A', 2: 'NS', 5: 'CNAME', 6: 'SOA', 12: 'PTR', 15: 'MX', 16: 'TXT', 28: 'AAAA', 33: 'SRV', 64: 'SVCB', 65: 'HTTPS', 255: 'ANY' };

export function qtypeText(t: number): string {
  return QTYPE_NAMES[t] ?? `TYPE${t}`;
}
