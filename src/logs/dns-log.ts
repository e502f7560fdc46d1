/**
 * The DNS forwarder's log (`dns-forwarder.log` in the state directory, and
 * the `.1` it was rotated to; src/dns/log-file.ts) → `NameRecord`s: which
 * name was answered with which addresses, to whom, and which names were
 * refused. One JSON object a line (src/dns/types.ts `ForwarderRecord`);
 * other records (the nft writer's `writer-up`, …) are counted and skipped, a
 * line that is not such a record is counted as malformed, never fatal. Plain
 * or gzip (by magic bytes), as the kernel log reader does.
 */
import { accessSync, constants, createReadStream, existsSync } from 'node:fs';
import { open } from 'node:fs/promises';
import readline from 'node:readline';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { errnoText } from '../diag/errno.js';
import ipaddr from 'ipaddr.js';
import { MAX_PROBLEMS, type ReadProblem } from './event.js';
import { ReadError } from './read.js';

/**
 * - `answer`: a forwarded answer for a name no rule names (`dns-answer`);
 * - `publish`: an answer whose addresses went into allow rules' sets first (`dns-publish`);
 * - `refused`: a deny rule names it (`dns-refused`; no addresses).
 */
export type NameRecordKind = 'answer' | 'publish' | 'refused';

export interface NameRecord {
  /** Milliseconds since the epoch; undefined when the record's time could not be read. */
  time?: number;
  kind: NameRecordKind;
  /** As asked, lowercase. */
  name: string;
  qtype: string;
  /** Canonical text (IPv6 compressed). */
  addresses: string[];
  /** Smallest TTL of the addresses, seconds. */
  ttl?: number;
  /** publish: how long the kernel keeps them, seconds. */
  lifetime?: number;
  /** publish: the allow rules; refused: the deny rules. */
  rules: string[];
  uid?: number;
  proto: 'udp' | 'tcp';
}

export interface DnsReadCounts {
  lines: number;
  /** Lines that became NameRecords. */
  records: number;
  /** Other forwarder records (the nft writer's events). */
  other: number;
  malformed: number;
  /** Records older than --since. */
  beforeSince: number;
  /** Files read, oldest first. */
  files: string[];
  problems: ReadProblem[];
}

export function emptyDnsCounts(): DnsReadCounts {
  return { lines: 0, records: 0, other: 0, malformed: 0, beforeSince: 0, files: [], problems: [] };
}

/** Dotted quad without leading zeros: already canonical. */
const IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
/** Canonical forms of the IPv6 addresses seen (the same ones come back again and again); cleared when it grows past 100,000. */
const canonical6 = new Map<string, string | null>();

/** An address as the forwarder logged it → canonical text, or undefined when it is not one. */
function canonicalAddress(a: unknown): string | undefined {
  if (typeof a !== 'string') return undefined;
  if (IPV4.test(a)) return a;
  let c = canonical6.get(a);
  if (c === undefined) {
    // As policy/address.ts formatAddress writes it (RFC 5952), without its detour through IPv4 and bigint.
    c = a.includes(':') && !a.includes('%') && ipaddr.IPv6.isValid(a) ? ipaddr.IPv6.parse(a).toString() : null;
    if (canonical6.size >= 100_000) canonical6.clear();
    canonical6.set(a, c);
  }
  return c ?? undefined;
}

const KINDS: Record<string, NameRecordKind> = { 'dns-answer': 'answer', 'dns-publish': 'publish', 'dns-refused': 'refused' };

/** The forwarder log at `path` as the files to read, oldest first: `path.1` (rotated), then `path`, those that exist. */
export function dnsLogFiles(path: string): string[] {
  return [`${path}.1`, path].filter((p) => existsSync(p));
}

/** `dnsLogFiles`, only those this process may read (the state directory is root's: for others there is nothing to read, not an error). */
export function readableDnsLogFiles(path: string): string[] {
  return dnsLogFiles(path).filter((p) => {
    try {
      accessSync(p, constants.R_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** One line → a record, 'other' (a forwarder record of another kind), or why it is malformed. */
export function parseDnsLine(line: string): NameRecord | 'other' | { malformed: string } {
  let o: unknown;
  try {
    o = JSON.parse(line);
  } catch {
    return { malformed: 'not a JSON object' };
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return { malformed: 'not a JSON object' };
  const r = o as Record<string, unknown>;
  if (typeof r.event !== 'string') return { malformed: 'no "event"' };
  const kind = KINDS[r.event];
  if (!kind) return 'other';
  if (typeof r.name !== 'string' || !r.name) return { malformed: 'no "name"' };
  if (r.proto !== 'udp' && r.proto !== 'tcp') return { malformed: 'bad "proto"' };
  const time = typeof r.time === 'string' ? Date.parse(r.time) : NaN;
  const addresses: string[] = [];
  if (r.addresses !== undefined) {
    if (!Array.isArray(r.addresses)) return { malformed: 'bad "addresses"' };
    for (const a of r.addresses) {
      const c = canonicalAddress(a);
      if (c === undefined) return { malformed: `bad address ${JSON.stringify(a)}` };
      addresses.push(c);
    }
  }
  const rules = Array.isArray(r.rules) ? r.rules.filter((x): x is string => typeof x === 'string') : [];
  const count = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined);
  const ttl = count(r.ttl);
  const lifetime = count(r.lifetime);
  const uid = typeof r.uid === 'number' && Number.isInteger(r.uid) && r.uid >= 0 ? r.uid : undefined;
  return {
    ...(Number.isNaN(time) ? {} : { time }),
    kind,
    name: r.name.toLowerCase(),
    qtype: typeof r.qtype === 'string' ? r.qtype : '',
    addresses,
    ...(ttl !== undefined ? { ttl } : {}),
    ...(lifetime !== undefined ? { lifetime } : {}),
    rules,
    ...(uid !== undefined ? { uid } : {}),
    proto: r.proto,
  };
}

/** Read the forwarder log files in the order given; records go to `sink`. Unreadable files are a ReadError. */
export async function readDnsLog(files: readonly { path: string; name: string }[], opts: { since?: number }, sink: (r: NameRecord) => void): Promise<DnsReadCounts> {
  const c = emptyDnsCounts();
  for (const f of files) {
    let input: Readable;
    try {
      const fh = await open(f.path, 'r');
      const head = Buffer.alloc(2);
      const { bytesRead } = await fh.read(head, 0, 2, 0);
      await fh.close();
      const raw = createReadStream(f.path);
      input = bytesRead === 2 && head[0] === 0x1f && head[1] === 0x8b ? raw.pipe(createGunzip()) : raw;
    } catch (e) {
      throw new ReadError(`cannot read ${f.name}: ${errnoText(e)}`);
    }
    c.files.push(f.name);
    let n = 0;
    const bad = (reason: string) => {
      c.malformed++;
      if (c.problems.length < MAX_PROBLEMS) c.problems.push({ where: f.name, line: n, reason });
    };
    try {
      for await (const line of readline.createInterface({ input, crlfDelay: Infinity })) {
        n++;
        if (!line.trim()) continue;
        c.lines++;
        const r = parseDnsLine(line);
        if (r === 'other') c.other++;
        else if ('malformed' in r) bad(r.malformed);
        else if (opts.since !== undefined && r.time !== undefined && r.time < opts.since) c.beforeSince++;
        else {
          c.records++;
          sink(r);
        }
      }
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // A gzip file cut short keeps what was readable, as for the kernel logs.
      if (code === 'Z_BUF_ERROR' || code === 'Z_DATA_ERROR') bad(`gzip data ends early or is corrupt (${(e as Error).message})`);
      else throw new ReadError(`cannot read ${f.name}: ${errnoText(e)}`);
    }
  }
  return c;
}
