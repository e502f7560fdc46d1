/**
 * Kernel log line → LogEvent. The hot path of `stats`: millions of lines,
 * so no regular expression runs per line; fields are found with indexOf and
 * character compares, times are cached per second.
 *
 * A netfilter LOG line (nf_log_syslog, the same text for iptables LOG and
 * nft `log`) is the log prefix followed by `KEY=value ` fields:
 *
 *     EGRESS D:smtp IN= OUT=eth0 SRC=192.0.2.1 DST=198.51.100.7 LEN=60 TOS=0x00
 *     PREC=0x00 TTL=64 ID=44257 DF PROTO=TCP SPT=57408 DPT=25 WINDOW=64240
 *     RES=0x00 SYN URGP=0 UID=33 GID=33
 *
 * IPv6 lines log addresses fully expanded (`2001:0db8:0000:…`) and carry
 * `TC= HOPLIMIT= FLOWLBL=` instead of `TOS= PREC= TTL= ID=`; ICMP lines have
 * `TYPE= CODE=` (and `ID= SEQ=` for echo), an ICMP error quotes the packet it
 * is about in `[…]`, which is not read. `UID= GID=` appear only when the rule
 * asked for them and the packet had a socket.
 *
 * In front of that text, whatever carried the line: syslog (RFC 3164
 * `Nov 23 09:14:42 host kernel: [12345.678] …`, RFC 5424 / rsyslog ISO
 * `2026-11-23T09:14:42.123456+01:00 host kernel: …`), dmesg (`[12345.678]`,
 * `dmesg -T` `[Mon Nov 23 09:14:42 2026]`), /dev/kmsg records
 * (`4,345,1738426972,-;…`) and `journalctl -o json` objects (MESSAGE and
 * __REALTIME_TIMESTAMP).
 *
 * Which lines are events: those whose prefix ends in an egress tag
 * (`<V>:<rule> `, backends/log-tag.ts), or, with --prefix, those whose prefix
 * is one of the given ones (tagged or not). Of those, a packet this host sent
 * (`IN=` empty) or forwarded (`IN=` and `OUT=` both set: a container's or
 * VM's, SPEC §6; the event gets `in`); one that came in for this host
 * (`IN=` set, `OUT=` empty) is counted as inbound.
 */
import type { TagVerdict } from '../backends/log-tag.js';
import ipaddr from 'ipaddr.js';
import { formatAddress, parseAddress, type Family } from '../policy/address.js';
import { emptyCounts, MAX_PROBLEMS, type EventProto, type LogEvent, type ReadCounts } from './event.js';
import { afterHeader, HeaderParser } from './parse-header.js';
import { find, has, isDigit, num, quoted, valueEnd } from './scan.js';

export { isoTime } from './scan.js';

const enum C {
  Space = 32,
  Dash = 45,
  Dot = 46,
  Colon = 58,
  Zero = 48,
  Nine = 57,
  LBrace = 123,
  Tilde = 126,
  Underscore = 95,
  LowerA = 97,
  LowerZ = 122,
}

export interface ParseOptions {
  /** Only lines with one of these log prefixes (tagged or not); default: every egress-tagged line. */
  prefixes?: readonly string[];
  /** "Now", to give RFC 3164 timestamps (which have no year) their year. */
  now: number;
  /** Wall-clock time of boot, for dmesg and kmsg timestamps (seconds since boot). */
  bootTimeMs?: number;
  /** Drop events older than this (ms since the epoch). */
  since?: number;
}

const CACHE_MAX = 100_000;

function isRuleChar(c: number): boolean {
  return (c >= C.LowerA && c <= C.LowerZ) || isDigit(c) || c === C.Dash || c === C.Underscore || c === C.Tilde;
}

/** A string's UTF-8 bytes as a latin1 string: the reader decodes input as latin1 (one char per byte, no validation cost). */
export function toLatin1(s: string): string {
  return Buffer.from(s, 'utf8').toString('latin1');
}

/**
 * A copy of `s` that does not point into the chunk it was sliced from: V8
 * keeps a whole 1 MiB read chunk alive for as long as any slice of it lives,
 * so every string that is kept (cache keys and values) is copied once.
 */
function own(s: string): string {
  return s.length < 13 ? s : Buffer.from(s, 'latin1').toString('latin1');
}

export function fromLatin1(s: string): string {
  // eslint-disable-next-line no-control-regex
  return /[^\x00-\x7f]/.test(s) ? Buffer.from(s, 'latin1').toString('utf8') : s;
}

const TCP: [EventProto, number] = ['tcp', 6];
const UDP: [EventProto, number] = ['udp', 17];
const PROTOS: Record<string, [EventProto, number]> = {
  UDPLITE: ['other', 136],
  SCTP: ['sctp', 132],
  ICMP: ['icmp', 1],
  ICMPv6: ['icmp', 58],
  ICMPV6: ['icmp', 58],
};

/** The common two without a hash lookup. */
function protoOf(name: string): [EventProto, number] | undefined {
  if (name.length === 3) {
    if (name === 'TCP') return TCP;
    if (name === 'UDP') return UDP;
  }
  return PROTOS[name];
}

/**
 * Parses lines one at a time and counts what it saw. Stateful only for
 * speed (caches) and for the tally; one per input source.
 */
/** How many lines of other LOG rules are looked at for their prefix (the rest only counted: the hot path stays as it was). */
const OTHER_SAMPLE = 1000;
/** Log times outside [2000, now + a year] are not times of this host's lines. */
const MIN_TIME_MS = Date.UTC(2000, 0, 1);
const MAX_AHEAD_MS = 366 * 86_400_000;
/** The largest uid or gid (uid_t)-1 leaves (the policy's bound too). */
const MAX_ID = 0xfffffffe;

function isByte(v: unknown): boolean {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 255;
}

export class KernelLineParser {
  readonly counts: ReadCounts = emptyCounts();
  private readonly prefixes: { raw: string; trimmed: string; shown: string }[];
  private readonly since: number | undefined;
  private readonly header: HeaderParser;
  // Caches: canonical destinations, prefixes, rule names.
  private readonly dsts = new Map<string, string | null>();
  private readonly prefixText = new Map<string, string>();
  private readonly rules = new Map<string, string>();
  private readonly ifaces = new Map<string, string>();
  private lastPrefixRaw = '\u0000';
  private lastPrefix = '';
  // Per-chunk search results (see parseRange).
  private chunk = 0;
  private lineIds = 0;
  private nextOut = -1;
  private nextUid = -1;
  private nextGid = -1;
  private readonly nowMs: number;
  /** Time of the most recent line that had one (for lines that have none). */
  lastTime: number | undefined = undefined;
  /** Prefixes of the first lines of other LOG rules (`other`), and how many of those carried each. */
  readonly otherPrefixes = new Map<string, number>();
  private otherSampled = 0;

  constructor(opts: ParseOptions) {
    this.prefixes = (opts.prefixes ?? []).map((p) => ({ raw: toLatin1(p), trimmed: toLatin1(p.trimEnd()), shown: p }));
    this.header = new HeaderParser(opts.now, opts.bootTimeMs);
    this.nowMs = opts.now;
    this.since = opts.since;
  }

  /** One line (without its newline). `where`/`lineNo` only name malformed lines. */
  parseLine(line: string, where = '', lineNo = 0): LogEvent | undefined {
    return this.parseRange(line, 0, line.length, --this.lineIds, where, lineNo);
  }

  /**
   * The line s[a, b) of a chunk of text. The reader hands lines this way
   * rather than as slices: V8 reads characters of a sliced string several
   * times slower than those of the flat chunk it was cut from (measured:
   * bench/logs.mjs). `chunk` identifies `s` (a new number for new text), so
   * searches that run past the line can be remembered for the next lines.
   */
  parseRange(s: string, a: number, b: number, chunk: number, where = '', lineNo = 0): LogEvent | undefined {
    this.counts.lines++;
    if (chunk !== this.chunk) {
      this.chunk = chunk;
      this.nextOut = -1;
      this.nextUid = -1;
      this.nextGid = -1;
    }
    // The next "OUT=" in the chunk, found once for all the lines before it (lines without it cost nothing).
    if (this.nextOut < a) {
      const o = s.indexOf('OUT=', a);
      this.nextOut = o < 0 ? Infinity : o;
    }
    const o = this.nextOut < b ? this.nextOut : -1;
    if (s.charCodeAt(a) === C.LBrace) {
      if (o < 0 && !s.slice(a, b).includes('"MESSAGE":[')) return undefined;
      return this.parseJournal(s.slice(a, b), where, lineNo);
    }
    if (o < 0) return undefined;
    const i = s.lastIndexOf('IN=', o);
    if (i < a) return undefined;
    return this.parseNetfilter(s, a, b, i, -1, where, lineNo);
  }

  /** A /dev/kmsg record or journal MESSAGE whose time is already known. */
  parseMessage(msg: string, time: number | undefined, where = '', lineNo = 0): LogEvent | undefined {
    this.counts.lines++;
    const o = msg.indexOf('OUT=');
    if (o < 0) return undefined;
    const i = msg.lastIndexOf('IN=', o);
    if (i < 0) return undefined;
    this.chunk = --this.lineIds;
    this.nextOut = this.nextUid = this.nextGid = -1;
    return this.parseNetfilter(msg, 0, msg.length, i, time ?? Number.NaN, where, lineNo, 0);
  }

  private malformed(where: string, lineNo: number, reason: string): undefined {
    this.counts.malformed++;
    if (this.counts.problems.length < MAX_PROBLEMS) this.counts.problems.push({ where, line: lineNo, reason });
    return undefined;
  }

  private parseJournal(line: string, where: string, lineNo: number): LogEvent | undefined {
    let j: { MESSAGE?: unknown; __REALTIME_TIMESTAMP?: unknown; _TRANSPORT?: unknown };
    try {
      j = JSON.parse(line) as typeof j;
    } catch {
      return this.malformed(where, lineNo, 'not a complete JSON object (truncated journal record?)');
    }
    // Only the kernel's records (a `logger` line in the journal is _TRANSPORT=syslog or stdout): D5.
    if (j._TRANSPORT !== undefined && j._TRANSPORT !== 'kernel') {
      this.counts.other++;
      return undefined;
    }
    let msg = j.MESSAGE;
    if (msg === undefined) return undefined; // a record without a message
    // journald stores a message that is not valid UTF-8 as an array of bytes. Anything else (nested arrays, numbers
    // above 255, objects) is no message: counted, never converted (Buffer.from would stringify nested arrays
    // recursively, and 5000 levels overflow the stack: D9).
    if (Array.isArray(msg)) {
      if (!msg.every(isByte)) return this.malformed(where, lineNo, 'journal MESSAGE is neither text nor an array of bytes');
      msg = Buffer.from(msg as number[]).toString('latin1');
    }
    if (typeof msg !== 'string') return this.malformed(where, lineNo, 'journal MESSAGE is neither text nor an array of bytes');
    // journalctl writes the stamp as a string of digits; a number is taken too, anything else is no time.
    const stamp = j.__REALTIME_TIMESTAMP;
    let us: number | undefined;
    if (stamp !== undefined) {
      us = typeof stamp === 'string' && /^\d+$/.test(stamp) ? Number(stamp) : typeof stamp === 'number' ? stamp : Number.NaN;
      if (!Number.isFinite(us)) return this.malformed(where, lineNo, 'impossible time stamp');
    }
    this.counts.lines--; // parseMessage counts it again
    return this.parseMessage(msg, us !== undefined ? us / 1000 : undefined, where, lineNo);
  }

  /**
   * `i` is where "IN=" starts. `time`: -1 = parse the line's header for it;
   * NaN = none; else known. `msgStart`: where the message starts when known.
   */
  private parseNetfilter(line: string, a: number, b: number, i: number, time: number, where: string, lineNo: number, msgStart = -1): LogEvent | undefined {
    this.counts.netfilter++;
    // The egress tag "<V>:<rule> " ends right where IN= starts.
    let tag: TagVerdict | undefined;
    let rule: string | undefined;
    let tagStart = i;
    if (i >= a + 4 && line.charCodeAt(i - 1) === C.Space) {
      let k = i - 2;
      while (k >= a && isRuleChar(line.charCodeAt(k))) k--;
      if (k >= a + 1 && k < i - 2 && line.charCodeAt(k) === C.Colon) {
        const v = line.charCodeAt(k - 1);
        if (v === 68 /* D */ || v === 80 /* P */ || v === 100 /* d */ || v === 112 /* p */ || v === 66 /* B */ || v === 98 /* b */ || v === 85 /* U */ || v === 117 /* u */) {
          const name = line.slice(k + 1, i - 1);
          if (validRuleTag(name)) {
            tag = String.fromCharCode(v) as TagVerdict;
            if (name !== '-') rule = this.intern(this.rules, name);
            tagStart = k - 1;
          }
        }
      }
    }
    // Selection.
    let shownPrefix: string | undefined;
    if (this.prefixes.length) {
      for (const p of this.prefixes) {
        if (this.prefixAt(line, a, tagStart, p.trimmed) || (tag !== undefined && this.prefixAt(line, a, i, p.trimmed))) {
          shownPrefix = p.shown;
          if (tag !== undefined && !this.prefixAt(line, a, tagStart, p.trimmed)) {
            // The whole prefix was given, tag included: keep the tag, report the part before it.
            shownPrefix = p.shown.slice(0, Math.max(0, p.shown.length - (i - tagStart)));
          }
          break;
        }
      }
      if (shownPrefix === undefined) {
        this.counts.other++;
        if (this.otherSampled < OTHER_SAMPLE) this.noteOther(line, a, b, tagStart, time, msgStart);
        return undefined;
      }
    } else if (tag === undefined) {
      this.counts.other++;
      if (this.otherSampled < OTHER_SAMPLE) this.noteOther(line, a, b, tagStart, time, msgStart);
      return undefined;
    }
    // Only the kernel's lines (D5), decided before anything of the line is counted or quoted: a `logger` line
    // posing as netfilter's is `other`, never an event, an inbound packet or a malformed line echoed in the report.
    if (time === -1) {
      this.header.parse(line, a, b);
      if (!this.header.fromKernel(line, b)) {
        this.counts.netfilter--;
        this.counts.other++;
        return undefined;
      }
    }

    // Going out ("IN=" empty) or forwarded ("IN=" and "OUT=" both set); not in for this host.
    let p = i + 3;
    let inIf: string | undefined;
    if (line.charCodeAt(p) !== C.Space) {
      const e = valueEnd(line, b, p);
      if (!has(line, e, ' OUT=') || e + 5 >= b || line.charCodeAt(e + 5) === C.Space) {
        this.counts.inbound++;
        return undefined;
      }
      inIf = this.intern(this.ifaces, line.slice(p, e));
      p = e;
    }

    // Fields: jump to each one with indexOf (a fast one-byte string search) rather than walk every token.
    const n = b;
    let src: string | undefined;
    let dstRaw: string | undefined;
    let protoName: string | undefined;
    let out: string | undefined;
    let spt = -1;
    let dpt = -1;
    let dptEnd = 0;
    let type = -1;
    let code = -1;
    let icmpId = -1;
    let uid = -1;
    let gid = -1;
    let bad: string | undefined;
    if (has(line, p, ' OUT=')) {
      const e = valueEnd(line, b, p + 5);
      if (e > p + 5) out = line.slice(p + 5, e);
      p = e;
    }
    const sAt = find(line, ' SRC=', p, b);
    if (sAt >= 0) {
      const e = valueEnd(line, b, sAt + 5);
      src = line.slice(sAt + 5, e);
      p = e;
    }
    const dAt = sAt < 0 ? -1 : find(line, ' DST=', p, b);
    if (dAt >= 0) {
      const e = valueEnd(line, b, dAt + 5);
      dstRaw = line.slice(dAt + 5, e);
      p = e;
    }
    const pAt = dAt < 0 ? -1 : find(line, ' PROTO=', p, b);
    if (pAt >= 0) {
      const e = valueEnd(line, b, pAt + 7);
      // The two common protocols without a slice; anything else is looked up by name.
      protoName = e - pAt === 10 && has(line, pAt + 7, 'TCP') ? 'TCP' : e - pAt === 10 && has(line, pAt + 7, 'UDP') ? 'UDP' : line.slice(pAt + 7, e);
      p = e;
      // Fields follow PROTO= in a fixed order, so a packet quoted by an ICMP error ("[SRC=… SPT=…]") is never read.
      const c0 = protoName.charCodeAt(0);
      if (c0 === 84 /* T */ || c0 === 85 /* U */ || c0 === 83 /* S */) {
        // TCP, UDP, UDPLITE, SCTP: "SPT=… DPT=…" come first.
        if (has(line, p, ' SPT=')) {
          const e1 = valueEnd(line, b, p + 5);
          spt = num(line, p + 5, e1);
          if (has(line, e1, ' DPT=')) {
            dptEnd = valueEnd(line, b, e1 + 5);
            dpt = num(line, e1 + 5, dptEnd);
            p = dptEnd;
          }
        }
      } else if (c0 === 73 /* I */ && has(line, p, ' TYPE=')) {
        const e1 = valueEnd(line, b, p + 6);
        type = num(line, p + 6, e1);
        if (has(line, e1, ' CODE=')) {
          const e2 = valueEnd(line, b, e1 + 6);
          code = num(line, e1 + 6, e2);
          if (has(line, e2, ' ID=')) icmpId = num(line, e2 + 4, valueEnd(line, b, e2 + 4));
        }
      }
    }
    // UID/GID come last (after a quoted packet, too). The next " UID=" in the chunk is remembered, so
    // logs without --log-uid do not make every line search to the end of the chunk.
    if (this.nextUid < p) {
      const u = line.indexOf(' UID=', p);
      this.nextUid = u < 0 ? Infinity : u;
    }
    const uAt = this.nextUid + 5 <= b ? this.nextUid : -1;
    // (uid_t)-1 is no owner: the kernel logs an unmapped one as the overflow uid, never as 4294967295.
    if (uAt >= p) {
      const e = valueEnd(line, b, uAt + 5);
      uid = num(line, uAt + 5, e);
      if (uid < 0 || uid > MAX_ID) bad = 'bad UID';
      if (has(line, e, ' GID=')) {
        gid = num(line, e + 5, valueEnd(line, b, e + 5));
        if (gid < 0 || gid > MAX_ID) bad = 'bad GID';
      }
    } else {
      // The kernel logs UID= and GID= together: a GID= alone is what is left of a garbled line.
      if (this.nextGid < p) {
        const g = line.indexOf(' GID=', p);
        this.nextGid = g < 0 ? Infinity : g;
      }
      if (this.nextGid + 5 <= b) bad = 'GID= without UID= (garbled line?)';
    }
    if (bad) return this.malformed(where, lineNo, bad);
    if (src === undefined || dstRaw === undefined) return this.malformed(where, lineNo, 'no SRC= or DST= (truncated line?)');
    if (protoName === undefined) return this.malformed(where, lineNo, 'no PROTO= (truncated line?)');
    const dst = this.canonical(dstRaw);
    if (dst === null) return this.malformed(where, lineNo, `bad destination address ${quoted(dstRaw)}`);
    // The source is kept as logged (it tells connection attempts apart, and is a forwarded flow's workload), but it must be an address.
    if (this.canonical(src) === null) return this.malformed(where, lineNo, `bad source address ${quoted(src)}`);
    let proto: EventProto;
    let protoNum: number;
    const known = protoOf(protoName);
    if (known) [proto, protoNum] = known;
    else {
      protoNum = num(protoName, 0, protoName.length);
      if (protoNum < 0 || protoNum > 255) return this.malformed(where, lineNo, `bad PROTO=${quoted(protoName)}`);
      proto = 'other';
    }
    if (proto === 'tcp' || proto === 'udp' || proto === 'sctp') {
      // The kernel ends every field with a space; a port at the very end of the line may have been cut.
      if (spt < 0 || dpt < 0 || spt > 65535 || dpt > 65535 || dptEnd >= n) return this.malformed(where, lineNo, 'missing or cut SPT=/DPT= (truncated line?)');
    } else if (proto === 'icmp') {
      if (type < 0 || code < 0 || type > 255 || code > 255) return this.malformed(where, lineNo, 'missing TYPE=/CODE= (truncated line?)');
    }
    if (uid >= 0 && gid < 0) return this.malformed(where, lineNo, 'UID= without GID= (truncated line?)');

    // Time and the message start (for the prefix text).
    let t: number | undefined;
    if (time === -1) {
      // The header was parsed (and found the kernel's) above.
      if (this.header.badTime) return this.malformed(where, lineNo, 'impossible time stamp');
      t = this.header.time;
      msgStart = this.header.start; // -2: a syslog header, found only if needed (below)
    } else t = Number.isNaN(time) ? undefined : time;
    // Seconds since boot of 1e20, a journal stamp of 1e400: no time a log line can have.
    if (t !== undefined && !(t > MIN_TIME_MS && t < this.nowMs + MAX_AHEAD_MS)) return this.malformed(where, lineNo, 'impossible time stamp');
    if (t !== undefined) this.lastTime = t;
    else t = this.lastTime;
    if (this.since !== undefined && t !== undefined && t < this.since) {
      this.counts.beforeSince++;
      return undefined;
    }

    const family: Family = dst.includes(':') ? 'ipv6' : 'ipv4';
    let prefix: string | undefined = shownPrefix;
    if (prefix === undefined) {
      // Most lines carry the same prefix as the one before: if its text ends right at the tag and
      // starts right after a header (": ", "] ", ";" or the line's start), it is that prefix.
      const last = this.lastPrefixRaw;
      const f = tagStart - last.length;
      if (f >= a && has(line, f, last) && afterHeader(line, a, f)) prefix = this.lastPrefix;
      else {
        if (msgStart === -2) msgStart = this.header.afterSyslogTag(line, a, b, this.header.tagFrom);
        const from = msgStart < 0 || msgStart > tagStart ? tagStart : msgStart;
        const raw = line.slice(from, tagStart);
        prefix = this.prefixText.get(raw);
        if (prefix === undefined) {
          prefix = own(fromLatin1(raw));
          if (this.prefixText.size < 1000) this.prefixText.set(raw, prefix);
        }
        this.lastPrefixRaw = raw;
        this.lastPrefix = prefix;
      }
    }
    this.counts.events++;
    // One object literal with every field, always in this order: all events share one hidden class,
    // so the code reading them (dedupe, aggregation) stays monomorphic.
    const isIcmp = proto === 'icmp';
    const ev: LogEvent = {
      time: t,
      source: 'netfilter',
      prefix,
      tag,
      rule,
      verdict: tag === 'd' || tag === 'p' || tag === 'b' || tag === 'u' ? 'would-deny' : 'denied',
      family,
      src,
      dst,
      proto,
      protoNum,
      spt: spt >= 0 ? spt : undefined,
      dpt: dpt >= 0 ? dpt : undefined,
      icmpType: isIcmp ? type : undefined,
      icmpCode: isIcmp ? code : undefined,
      icmpId: isIcmp && icmpId >= 0 ? icmpId : undefined,
      uid: uid >= 0 ? uid : undefined,
      gid: gid >= 0 ? gid : undefined,
      out: out || undefined,
      in: inIf,
    };
    return ev;
  }

  /**
   * The prefix of a netfilter line of another LOG rule (the kernel's only),
   * for the hint that names what the log holds when nothing was an event.
   */
  private noteOther(line: string, a: number, b: number, end: number, time: number, msgStart: number): void {
    this.otherSampled++;
    let from = msgStart;
    if (time === -1) {
      this.header.parse(line, a, b);
      if (!this.header.fromKernel(line, b)) return;
      from = this.header.start;
      if (from === -2) {
        // After "host kernel: ", but not the way afterSyslogTag skips a bracket: "[UFW BLOCK]" is a prefix, not a stamp.
        const colon = find(line, ': ', this.header.tagFrom, end);
        from = colon < 0 ? a : colon + 2;
      }
    }
    if (from < a || from > end) from = a;
    const p = fromLatin1(line.slice(from, end))
      .replace(/^\[\s*\d+(\.\d+)?\]/, '')
      .trim();
    if (!p) return;
    const n = this.otherPrefixes.get(p);
    if (n !== undefined) this.otherPrefixes.set(p, n + 1);
    else if (this.otherPrefixes.size < 20) this.otherPrefixes.set(p, 1);
  }

  /** Whether the text just before `end` (spaces skipped) ends with `p` (itself without trailing spaces). */
  private prefixAt(line: string, a: number, end: number, p: string): boolean {
    let e = end;
    while (e > a && line.charCodeAt(e - 1) === C.Space) e--;
    return e - a >= p.length && has(line, e - p.length, p);
  }

  /**
   * The canonical text of a destination, the same string object every time
   * (its hash is computed once, so the maps downstream stay cheap).
   */
  private canonical(raw: string): string | null {
    let v = this.dsts.get(raw);
    if (v !== undefined) return v;
    // IPv4 as the kernel prints it (%pI4: dotted decimal, no leading zeros) is already canonical.
    if (raw.length <= 15 && isDottedQuad(raw)) v = own(raw);
    else if (raw.includes(':')) {
      // Straight to the IPv6 parser: parseAddress tries IPv4 first, which throws (slow) on every IPv6 address.
      v = raw.length <= 39 && !raw.includes('%') && ipaddr.IPv6.isValid(raw) ? ipaddr.IPv6.parse(raw).toString() : null;
    } else {
      const a = raw.length <= 15 ? parseAddress(raw) : undefined;
      v = a ? formatAddress(a.family, a.value) : null;
    }
    if (this.dsts.size >= CACHE_MAX) this.dsts.clear();
    this.dsts.set(own(raw), v);
    return v;
  }

  private intern(m: Map<string, string>, s: string): string {
    let v = m.get(s);
    if (v === undefined) {
      v = own(s);
      if (m.size < CACHE_MAX) m.set(v, v);
    }
    return v;
  }

}

/** "a.b.c.d", each 0-255 without leading zeros. */
function isDottedQuad(s: string): boolean {
  let parts = 0;
  let v = 0;
  let digits = 0;
  for (let i = 0; i <= s.length; i++) {
    const c = i < s.length ? s.charCodeAt(i) : C.Dot;
    if (c === C.Dot) {
      if (digits === 0 || v > 255 || (digits > 1 && s.charCodeAt(i - digits) === C.Zero)) return false;
      parts++;
      v = 0;
      digits = 0;
    } else if (c >= C.Zero && c <= C.Nine) {
      v = v * 10 + (c - C.Zero);
      digits++;
    } else return false;
  }
  return parts === 4;
}

/** `[a-z0-9_-]+(~[0-9a-f]{3})?` or "-", without a regex. */
function validRuleTag(s: string): boolean {
  if (s === '-') return true;
  const t = s.indexOf('~');
  if (t === 0) return false;
  if (t < 0) return true;
  if (s.length !== t + 4) return false;
  for (let i = t + 1; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (!(isDigit(c) || (c >= C.LowerA && c <= 102))) return false;
  }
  return true;
}
