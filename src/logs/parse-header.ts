/**
 * The carrier in front of a kernel message: its time and where the message
 * starts, for syslog (RFC 3164, ISO 8601 / RFC 3339, RFC 5424), dmesg (plain
 * and -T) and /dev/kmsg lines. Times are cached per second (and the local
 * zone's offset per hour): consecutive lines share them.
 */
import { find, has, isDigit, isoTime, num } from './scan.js';

const MONTHS: Record<string, number> = { Jan: 0, Feb: 1, Mar: 2, Apr: 3, May: 4, Jun: 5, Jul: 6, Aug: 7, Sep: 8, Oct: 9, Nov: 10, Dec: 11 };
const DAY_MS = 86_400_000;
const DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

const enum C {
  Space = 32,
  Comma = 44,
  Dash = 45,
  Dot = 46,
  Colon = 58,
  Semi = 59,
  Lt = 60,
  LBracket = 91,
  RBracket = 93,
}

export class HeaderParser {
  /** Results of the last parse(). */
  time: number | undefined = undefined;
  /** Where the message starts; -2: after the syslog tag that follows `tagFrom` (afterSyslogTag finds it, when needed). */
  start = 0;
  tagFrom = 0;
  /** The line had a time stamp, but not a possible one (Feb 30, 25:61:99): the line is malformed, not given the last time seen. */
  badTime = false;
  /** Where the syslog header's host name starts (the tag or APP-NAME follows it); -1: the line has no syslog header. */
  hostAt = -1;
  private lastKey = '';
  private lastKeyTime: number | undefined = undefined;
  /** dmesg -T's stamp and what it was, cached apart from the syslog one. */
  private ctimeKey = '';
  private ctimeTime: number | undefined = undefined;
  private ctimeBad = false;
  private isoKey = '';
  private isoZone = '';
  private isoBase: number | undefined = undefined;
  private offsetHour = -1;
  private offsetMs = 0;
  private readonly year: number;

  /** `now` gives RFC 3164 stamps (no year) their year; `bootTimeMs` turns dmesg and kmsg seconds-since-boot into times. */
  constructor(
    private readonly now: number,
    private readonly bootTimeMs: number | undefined,
  ) {
    this.year = new Date(now).getFullYear();
  }

  /** Sets `time` (undefined when unknown) and `start` (where the kernel message starts) for the line s[a, b). */
  parse(line: string, a: number, b: number): void {
    this.time = undefined;
    this.badTime = false;
    this.start = a;
    this.hostAt = -1;
    const c0 = line.charCodeAt(a);
    if (c0 === C.LBracket) {
      this.start = this.dmesgStamp(line, a, b);
      return;
    }
    let p = a;
    if (c0 === C.Lt) {
      // "<PRI>" in front of a syslog line (RFC 5424 always, RFC 3164 as sent on the wire).
      const gt = find(line, '>', a, b);
      if (gt < 0 || gt - a > 5) return;
      p = gt + 1;
      // RFC 5424: "<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG".
      if (line.charCodeAt(p) === 49 /* 1 */ && line.charCodeAt(p + 1) === C.Space) {
        const ts = p + 2;
        const tsEnd = find(line, ' ', ts, b);
        if (tsEnd < 0) return;
        this.time = isoTime(line, ts, tsEnd);
        this.badTime = this.time === undefined;
        this.hostAt = tsEnd + 1;
        let q = tsEnd;
        for (let f = 0; f < 4 && q >= 0; f++) q = find(line, ' ', q + 1, b); // HOST APP PROCID MSGID
        if (q < 0) return;
        q++;
        if (line.charCodeAt(q) === C.LBracket) {
          const close = find(line, '] ', q, b);
          q = close < 0 ? q : close + 2;
        } else q = find(line, ' ', q, b) + 1; // "-"
        if (q > a) this.start = this.skipKernelStamp(line, q, b);
        return;
      }
    }
    const c = line.charCodeAt(p);
    if (isDigit(c)) {
      // ISO 8601 (rsyslog RFC3339 template, RFC 5424 without PRI): "2026-11-23T09:14:42.123456+01:00 host kernel: …"
      if (line.charCodeAt(p + 4) === C.Dash && line.charCodeAt(p + 7) === C.Dash) {
        const tsEnd = find(line, ' ', p, b);
        if (tsEnd < 0) return;
        this.time = this.isoCached(line, p, tsEnd);
        this.badTime = this.time === undefined;
        this.start = -2;
        this.tagFrom = tsEnd + 1;
        this.hostAt = tsEnd + 1;
        return;
      }
      // /dev/kmsg: "PRI,SEQ,USEC,FLAGS[,…];MESSAGE" (USEC: microseconds since boot).
      const semi = find(line, ';', p, b);
      const c1 = find(line, ',', p, b);
      if (semi > 0 && c1 > 0 && c1 < semi) {
        const c2 = find(line, ',', c1 + 1, b);
        if (c2 > 0 && c2 < semi) {
          let c3 = find(line, ',', c2 + 1, b);
          if (c3 < 0 || c3 > semi) c3 = semi;
          const us = num(line, c2 + 1, c3, 15);
          if (us >= 0 && this.bootTimeMs !== undefined) this.time = this.bootTimeMs + us / 1000;
          // Digits, but too many for any uptime (15 digits of microseconds: 31 years).
          else if (us < 0 && c3 - c2 - 1 > 15 && /^\d+$/.test(line.slice(c2 + 1, c3))) this.badTime = true;
        }
        this.start = semi + 1;
      }
      return;
    }
    // RFC 3164: "Nov 23 09:14:42 host kernel: …" (local time, no year).
    if (c >= 65 && c <= 90 && line.charCodeAt(p + 3) === C.Space && line.charCodeAt(p + 9) === C.Colon && line.charCodeAt(p + 12) === C.Colon) {
      this.time = this.rfc3164(line, p);
      this.badTime = this.time === undefined;
      this.start = -2;
      this.tagFrom = p + 16;
      this.hostAt = p + 16;
    }
  }

  /**
   * Whether the line parse() last saw came from the kernel: a syslog line
   * only when its tag (APP-NAME) is `kernel` — any local user can send
   * `logger` lines that look like netfilter's, and `learn` would turn them
   * into allow rules (D5); lines without a syslog header (dmesg, /dev/kmsg)
   * are the kernel's own.
   */
  fromKernel(line: string, b: number): boolean {
    if (this.hostAt < 0) return true;
    const sp = find(line, ' ', this.hostAt, b);
    if (sp < 0) return false;
    const t = sp + 1;
    if (!has(line, t, 'kernel')) return false;
    const c = line.charCodeAt(t + 6);
    return c === C.Colon || c === C.Space || c === C.LBracket;
  }

  /** After "host tag: ", skipping a "[12345.678] " kernel stamp. */
  afterSyslogTag(line: string, a: number, b: number, hostAt: number): number {
    const sp = find(line, ' ', hostAt, b);
    if (sp < 0) return a;
    const colon = find(line, ': ', sp + 1, b);
    if (colon < 0) return a;
    return this.skipKernelStamp(line, colon + 2, b);
  }

  private skipKernelStamp(line: string, at: number, b: number): number {
    if (line.charCodeAt(at) !== C.LBracket) return at;
    const close = find(line, ']', at, b);
    if (close < 0 || close - at > 20) return at;
    return line.charCodeAt(close + 1) === C.Space ? close + 2 : close + 1;
  }

  /** "[  123.456789] " or "[Mon Nov 23 09:14:42 2026] " at `at`; returns where the message starts. */
  private dmesgStamp(line: string, at: number, b: number): number {
    const close = find(line, ']', at, b);
    if (close < 0 || close - at > 32) return at;
    const start = line.charCodeAt(close + 1) === C.Space ? close + 2 : close + 1;
    let a = at + 1;
    while (line.charCodeAt(a) === C.Space) a++;
    if (isDigit(line.charCodeAt(a))) {
      const dot = find(line, '.', a, close);
      const secs = num(line, a, dot < 0 || dot > close ? close : dot);
      const frac = dot < 0 || dot > close ? 0 : num(line, dot + 1, close);
      if (secs >= 0 && frac >= 0 && this.bootTimeMs !== undefined) this.time = this.bootTimeMs + secs * 1000 + (frac / 10 ** (close - dot - 1)) * 1000;
      // More seconds since boot than num reads (10 digits: 317 years).
      else if (secs < 0 && /^\d{11,}$/.test(line.slice(a, dot < 0 || dot > close ? close : dot))) this.badTime = true;
      return start;
    }
    // dmesg -T: "Mon Nov 23 09:14:42 2026" (local time, ctime format).
    const key = line.slice(a, close);
    if (key !== this.ctimeKey) {
      const m = MONTHS[key.slice(4, 7)];
      const d = num(key, key.charCodeAt(8) === C.Space ? 9 : 8, 10);
      const h = num(key, 11, 13);
      const mi = num(key, 14, 16);
      const s = num(key, 17, 19);
      const y = num(key, 20, 24);
      // A day the month has and a time of day that exists (Date would roll Feb 30 25:61:99 over into March).
      const exists = m !== undefined && y >= 0 && d >= 1 && d <= new Date(Date.UTC(y, m + 1, 0)).getUTCDate() && h >= 0 && h < 24 && mi >= 0 && mi < 60 && s >= 0 && s < 61;
      this.ctimeKey = key;
      this.ctimeTime = exists ? new Date(y, m, d, h, mi, s).getTime() : undefined;
      // Shaped like a ctime stamp ("Www Mmm dd hh:mm:ss yyyy") but not a time: the line is malformed, not timeless.
      this.ctimeBad = !exists && key.length === 24 && key.charCodeAt(3) === C.Space && key.charCodeAt(7) === C.Space && key.charCodeAt(13) === C.Colon && key.charCodeAt(16) === C.Colon && key.charCodeAt(19) === C.Space;
    }
    this.time = this.ctimeTime;
    this.badTime = this.ctimeBad;
    return start;
  }

  /** isoTime, with the part up to the second (and the zone) cached: consecutive lines share it. */
  private isoCached(line: string, a: number, b: number): number | undefined {
    // Where the fraction (if any) ends and the zone starts.
    let z = a + 19;
    let ms = 0;
    if (line.charCodeAt(z) === C.Dot || line.charCodeAt(z) === C.Comma) {
      let q = z + 1;
      while (q < b && isDigit(line.charCodeAt(q))) q++;
      const digits = Math.min(q - z - 1, 3);
      if (digits > 0) ms = num(line, z + 1, z + 1 + digits) * 10 ** (3 - digits);
      z = q;
    }
    const zoneLen = b - z;
    if (this.isoKey.length === 19 && this.isoZone.length === zoneLen && has(line, a, this.isoKey) && has(line, z, this.isoZone)) return this.isoBase === undefined ? undefined : this.isoBase + ms;
    this.isoKey = line.slice(a, a + 19);
    this.isoZone = line.slice(z, b);
    this.isoBase = isoTime(this.isoKey + this.isoZone, 0, 19 + zoneLen);
    return this.isoBase === undefined ? undefined : this.isoBase + ms;
  }

  /** Local wall-clock time → ms, with the zone's offset computed once per hour (Date's local conversion is slow). */
  private localTime(y: number, m: number, d: number, h: number, mi: number, s: number): number {
    const hourKey = ((y * 12 + m) * 31 + d) * 24 + h;
    if (hourKey !== this.offsetHour) {
      this.offsetHour = hourKey;
      this.offsetMs = new Date(y, m, d, h).getTime() - Date.UTC(y, m, d, h);
    }
    return Date.UTC(y, m, d, h, mi, s) + this.offsetMs;
  }

  private rfc3164(line: string, p: number): number | undefined {
    if (this.lastKey.length === 15 && has(line, p, this.lastKey)) return this.lastKeyTime;
    const key = line.slice(p, p + 15);
    const m = MONTHS[key.slice(0, 3)];
    const d = num(key, key.charCodeAt(4) === C.Space ? 5 : 4, 6);
    const h = num(key, 7, 9);
    const mi = num(key, 10, 12);
    const s = num(key, 13, 15);
    let t: number | undefined;
    // A day the month has (Feb 29 always: the year is a guess), and a time of day that exists.
    if (m !== undefined && d >= 1 && d <= (m === 1 ? 29 : DAYS_IN_MONTH[m]!) && h >= 0 && h < 24 && mi >= 0 && mi < 60 && s >= 0 && s < 61) {
      t = this.localTime(this.year, m, d, h, mi, s);
      // No year in the line: a date more than a day ahead of now is from last year.
      if (t > this.now + DAY_MS) t = this.localTime(this.year - 1, m, d, h, mi, s);
    }
    this.lastKey = key;
    this.lastKeyTime = t;
    return t;
  }
}

/**
 * Whether position f of the line starting at a is certainly where the kernel
 * message starts: the line's start, after a /dev/kmsg ";", after "kernel: ",
 * or after a kernel stamp "[ 12345.678901] ". (Anything else, e.g. a prefix
 * that itself ends in "] " or ": ", takes the slow path.)
 */
export function afterHeader(s: string, a: number, f: number): boolean {
  if (f === a) return true;
  const c1 = s.charCodeAt(f - 1);
  if (c1 === C.Semi) return true;
  if (c1 !== C.Space || f - a < 3) return false;
  const c2 = s.charCodeAt(f - 2);
  if (c2 === C.Colon) return f - a >= 8 && has(s, f - 8, 'kernel: ');
  if (c2 !== C.RBracket) return false;
  for (let k = f - 3; k >= a && k >= f - 24; k--) {
    const c = s.charCodeAt(k);
    if (c === C.LBracket) return k < f - 3;
    if (!(isDigit(c) || c === C.Dot || c === C.Space)) return false;
  }
  return false;
}
