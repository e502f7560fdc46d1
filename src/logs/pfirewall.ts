/**
 * The Windows Firewall log (pfirewall.log) → typed events, for `egress stats`
 * and `egress learn` on hosts compiled with `--target windows`. Pure: text or
 * lines in, events and counts out; reading the file is the caller's job
 * (read.ts, which asks `looksLikePfirewall` which parser a source gets and
 * feeds its lines to a `PfirewallLines`).
 *
 * The log is W3C-style: `#`-lines carry metadata, `#Fields:` names the
 * space-separated columns (and may appear again where the log was rotated or
 * the service restarted), `-` marks an empty column. Recent Windows adds a
 * `pid` column; an older log has no `#Fields:` line at all, and the standard
 * 1.5 column list is assumed. Only DROP and ALLOW lines are events; other
 * actions (INFO-EVENTS-LOST, and OPEN/CLOSE from very old logs) are counted
 * as skipped, lines that cannot be read as malformed, with the reason.
 */
import { formatAddress, parseAddress, type Family } from '../policy/address.js';
import { MAX_PROBLEMS, type EventProto, type LogEvent, type ReadCounts } from './event.js';
import { quoted } from './scan.js';

export type PfirewallAction = 'DROP' | 'ALLOW';
/** The log's `path` column: SEND is outbound, RECEIVE inbound. */
export type PfirewallDirection = 'send' | 'receive' | 'forward' | 'unknown';
export type PfirewallProtocol = 'tcp' | 'udp' | 'icmp' | 'icmpv6' | 'other';

export interface PfirewallEvent {
  /** 1-based line number in the input. */
  line: number;
  /** `YYYY-MM-DDTHH:MM:SS` as logged; local time unless `utc` (the log's `#Time Format:`). */
  time: string;
  utc: boolean;
  action: PfirewallAction;
  protocol: PfirewallProtocol;
  /** IANA protocol number (6, 17, 1, 58, or as logged). */
  protocolNumber: number;
  family: Family;
  src: string;
  dst: string;
  srcPort?: number;
  dstPort?: number;
  icmpType?: number;
  icmpCode?: number;
  size?: number;
  tcpFlags?: string;
  direction: PfirewallDirection;
  pid?: number;
}

export interface PfirewallProblem {
  line: number;
  reason: string;
}

export interface PfirewallLog {
  events: PfirewallEvent[];
  /** Header, blank and non-DROP/ALLOW lines. */
  skipped: number;
  /** Lines that could not be read; `problems` says why (the first MAX_PROBLEMS). */
  malformed: number;
  problems: PfirewallProblem[];
}

/** The columns of a version 1.5 log, for a log without a `#Fields:` line. */
export const DEFAULT_FIELDS = ['date', 'time', 'action', 'protocol', 'src-ip', 'dst-ip', 'src-port', 'dst-port', 'size', 'tcpflags', 'tcpsyn', 'tcpack', 'tcpwin', 'icmptype', 'icmpcode', 'info', 'path'] as const;

const REQUIRED = ['date', 'time', 'action', 'protocol', 'src-ip', 'dst-ip'] as const;

const PROTOCOLS: Record<string, [PfirewallProtocol, number]> = { TCP: ['tcp', 6], UDP: ['udp', 17], ICMP: ['icmp', 1], ICMPV6: ['icmpv6', 58] };
const DIRECTIONS: Record<string, PfirewallDirection> = { SEND: 'send', RECEIVE: 'receive', FORWARD: 'forward' };

class Malformed extends Error {}

/** Parse a whole log (text, or its lines in order). */
export function parsePfirewall(input: string | Iterable<string>): PfirewallLog {
  const lines = typeof input === 'string' ? input.split(/\r?\n/) : input;
  const out: PfirewallLog = { events: [], skipped: 0, malformed: 0, problems: [] };
  const cols = columns();
  let n = 0;
  for (const raw of lines) {
    n++;
    const line = (n === 1 ? raw.replace(/^\uFEFF/, '') : raw).replace(/\r$/, '').trim();
    if (line === '' || line.startsWith('#')) {
      readMeta(line, cols);
      out.skipped++;
      continue;
    }
    try {
      const ev = parseLine(line, cols.fields, n, cols.utc);
      if (ev) out.events.push(ev);
      else out.skipped++;
    } catch (e) {
      if (!(e instanceof Malformed)) throw e;
      out.malformed++;
      if (out.problems.length < MAX_PROBLEMS) out.problems.push({ line: n, reason: e.message });
    }
  }
  // A trailing newline is not a line of the log.
  if (typeof input === 'string' && input.endsWith('\n')) out.skipped--;
  return out;
}

/** What the `#` lines say so far: the columns (`#Fields:`) and whether times are UTC (`#Time Format:`). */
interface Columns {
  fields: readonly string[];
  utc: boolean;
}

function columns(): Columns {
  return { fields: DEFAULT_FIELDS, utc: false };
}

/** A metadata (`#`) or blank line: `#Fields:` and `#Time Format:` update `cols`; the rest say nothing we need. */
function readMeta(line: string, cols: Columns): void {
  const h = /^#\s*([A-Za-z ]+):\s*(.*)$/.exec(line);
  if (h?.[1]!.toLowerCase() === 'fields') cols.fields = h[2]!.trim().toLowerCase().split(/\s+/);
  if (h?.[1]!.toLowerCase() === 'time format') cols.utc = /^utc$/i.test(h[2]!.trim());
}

/** One data line under the given columns; undefined for actions that are not DROP or ALLOW. */
export function parseLine(line: string, fields: readonly string[], lineNo = 1, utc = false): PfirewallEvent | undefined {
  const cols = line.split(/\s+/);
  for (const f of REQUIRED) if (!fields.includes(f)) throw new Malformed(`the #Fields: line has no "${f}" column`);
  if (cols.length < fields.length) throw new Malformed(`${cols.length} columns, the #Fields: line names ${fields.length}`);
  const get = (f: string): string | undefined => {
    const i = fields.indexOf(f);
    const v = i < 0 ? undefined : cols[i];
    return v === '-' ? undefined : v;
  };
  const action = get('action')?.toUpperCase();
  if (action !== 'DROP' && action !== 'ALLOW') {
    if (action && /^[A-Z][A-Z-]*$/.test(action)) return undefined;
    throw new Malformed(`action ${quoted(get('action') ?? '-')}`);
  }
  const date = get('date') ?? '';
  const time = get('time') ?? '';
  if (!/^\d{4}-\d{2}-\d{2}$/.test(date) || !/^\d{2}:\d{2}:\d{2}$/.test(time) || !exists(date, time)) throw new Malformed(`date and time ${quoted(`${date} ${time}`)}`);
  const src = address(get('src-ip'), 'src-ip');
  const dst = address(get('dst-ip'), 'dst-ip');
  if (src.family !== dst.family) throw new Malformed('source and destination are of different families');
  const [protocol, protocolNumber] = protocolOf(get('protocol'));
  const ev: PfirewallEvent = { line: lineNo, time: `${date}T${time}`, utc, action, protocol, protocolNumber, family: src.family, src: src.text, dst: dst.text, direction: DIRECTIONS[(get('path') ?? '').toUpperCase()] ?? 'unknown' };
  const num = (f: string, max: number): number | undefined => {
    const v = get(f);
    if (v === undefined) return undefined;
    if (!/^\d+$/.test(v) || Number(v) > max) throw new Malformed(`${f} ${quoted(v)}`);
    return Number(v);
  };
  const srcPort = num('src-port', 65535);
  const dstPort = num('dst-port', 65535);
  if (srcPort !== undefined) ev.srcPort = srcPort;
  if (dstPort !== undefined) ev.dstPort = dstPort;
  const icmpType = num('icmptype', 255);
  const icmpCode = num('icmpcode', 255);
  if (icmpType !== undefined) ev.icmpType = icmpType;
  if (icmpCode !== undefined) ev.icmpCode = icmpCode;
  const size = num('size', Number.MAX_SAFE_INTEGER);
  if (size !== undefined) ev.size = size;
  const flags = get('tcpflags');
  if (flags !== undefined) ev.tcpFlags = flags;
  const pid = num('pid', 0xffffffff);
  if (pid !== undefined) ev.pid = pid;
  return ev;
}

/** A date the calendar has and a time of day that exists (2025-02-30 and 25:61:99 do not; Date would roll them over). */
function exists(date: string, time: string): boolean {
  const [y, mo, d] = date.split('-').map(Number) as [number, number, number];
  const [h, mi, s] = time.split(':').map(Number) as [number, number, number];
  return mo >= 1 && mo <= 12 && d >= 1 && d <= new Date(Date.UTC(y, mo, 0)).getUTCDate() && h < 24 && mi < 60 && s < 61;
}

function address(v: string | undefined, what: string): { family: Family; text: string } {
  // IPv6 link-local addresses may carry a zone ("fe80::1%12"); the zone is not part of the address.
  const text = (v ?? '').replace(/%[^%]*$/, '');
  const a = parseAddress(text);
  if (!a) throw new Malformed(`${what} ${quoted(v ?? '-')}`);
  return { family: a.family, text };
}

function protocolOf(v: string | undefined): [PfirewallProtocol, number] {
  const p = PROTOCOLS[(v ?? '').toUpperCase()];
  if (p) return p;
  if (v !== undefined && /^\d+$/.test(v) && Number(v) <= 255) {
    const n = Number(v);
    const named = Object.values(PROTOCOLS).find(([, num]) => num === n);
    return named ?? ['other', n];
  }
  throw new Malformed(`protocol ${quoted(v ?? '-')}`);
}

/** The byte order mark, as UTF-8 bytes read as latin1 (how read.ts decodes) or as one UTF-16 unit (text handed in). */
const BOM = /^\xef\xbb\xbf|^\uFEFF/;

/** Whether a source starting with `head` (its first 64 bytes, latin1) is a Windows Firewall log: its W3C header. */
export function looksLikePfirewall(head: string): boolean {
  return /^#(Version|Software|Fields|Time Format):/.test(head.replace(BOM, ''));
}

/** Incremental Windows Firewall log reading, line by line, into the reader's counts and `LogEvent`s. */
export class PfirewallLines {
  private readonly cols = columns();
  constructor(
    private readonly counts: ReadCounts,
    private readonly since: number | undefined,
  ) {}

  line(raw: string, where: string, lineNo: number): LogEvent | undefined {
    this.counts.lines++;
    const line = (lineNo === 1 ? raw.replace(BOM, '') : raw).trim();
    if (line === '' || line.startsWith('#')) {
      readMeta(line, this.cols);
      return undefined;
    }
    let ev;
    try {
      ev = parseLine(line, this.cols.fields, lineNo, this.cols.utc);
    } catch (e) {
      this.counts.malformed++;
      if (this.counts.problems.length < MAX_PROBLEMS) this.counts.problems.push({ where, line: lineNo, reason: (e as Error).message });
      return undefined;
    }
    if (!ev) return undefined;
    if (ev.direction === 'receive' || ev.direction === 'forward') {
      this.counts.inbound++;
      return undefined;
    }
    const a = parseAddress(ev.dst);
    if (!a) return undefined;
    const time = new Date(ev.utc ? `${ev.time}Z` : ev.time).getTime();
    if (this.since !== undefined && Number.isFinite(time) && time < this.since) {
      this.counts.beforeSince++;
      return undefined;
    }
    const proto: EventProto = ev.protocol === 'icmpv6' ? 'icmp' : ev.protocol;
    const out: LogEvent = {
      time: Number.isFinite(time) ? time : undefined,
      source: 'pfirewall',
      prefix: 'pfirewall',
      tag: undefined,
      rule: undefined,
      verdict: ev.action === 'DROP' ? 'denied' : 'allowed',
      family: a.family,
      src: ev.src,
      dst: formatAddress(a.family, a.value),
      proto,
      protoNum: ev.protocolNumber,
      spt: ev.srcPort,
      dpt: ev.dstPort,
      icmpType: ev.icmpType,
      icmpCode: ev.icmpCode,
      icmpId: undefined,
      uid: undefined,
      gid: undefined,
      out: undefined,
      in: undefined, // the Windows Firewall logs no forwarded traffic
    };
    this.counts.events++;
    this.counts.pfirewall++;
    return out;
  }
}
