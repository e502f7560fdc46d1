/**
 * Destination grammar: address, CIDR, range "a-b", hostname, "$set".
 * Addresses become closed intervals of bigint (IPv4: 32-bit, IPv6: 128-bit).
 */
import { looksLikeName, parseName } from './dns-name.js';

export type Family = 'ipv4' | 'ipv6';
export const FAMILIES: readonly Family[] = ['ipv4', 'ipv6'];
export const BITS: Record<Family, number> = { ipv4: 32, ipv6: 128 };

export interface Interval {
  lo: bigint;
  hi: bigint;
}

export type ParsedDest =
  | { kind: 'addr'; family: Family; lo: bigint; hi: bigint; hostBitsFix?: string }
  | { kind: 'host'; name: string }
  | { kind: 'set'; name: string }
  /** "*.example.com": one or more labels before the domain (dns-name.ts); needs `dns.proxy`. */
  | { kind: 'wildcard'; pattern: string }
  /** `code` says what kind of value it was meant to be; absent = an address. */
  | { kind: 'error'; message: string; hint?: string; code?: 'bad-hostname' | 'bad-wildcard' };

/** Parse one literal address (no prefix) of either family; strict four-part decimal IPv4 only. */
export function parseAddress(text: string): { family: Family; value: bigint } | undefined {
  if (text.includes(':')) {
    const value = parseIPv6(text);
    return value === undefined ? undefined : { family: 'ipv6', value };
  }
  const value = parseIPv4(text, 0);
  return value < 0 ? undefined : { family: 'ipv4', value: BigInt(value) };
}

/**
 * "a.b.c.d" from `from` to the end of `text`, each part 0–255 without
 * leading zeros (as ipaddr.js's isValidFourPartDecimal): the 32-bit value, or
 * -1. One pass over the characters (explain --flows parses an address per
 * flow; the split-and-regex version was most of its parsing time).
 */
function parseIPv4(text: string, from: number): number {
  let v = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = from; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 46) {
      // '.'
      if (digits === 0 || ++dots > 3) return -1;
      v = v * 256 + part;
      part = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      // A part is "0" or starts with 1–9, at most three digits, at most 255.
      if ((digits === 1 && part === 0) || ++digits > 3) return -1;
      part = part * 10 + (c - 48);
      if (part > 255) return -1;
    } else return -1;
  }
  return digits === 0 || dots !== 3 ? -1 : v * 256 + part;
}

/** A hex digit's value, or -1. */
function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** The groups of the IPv6 address being parsed or formatted (neither function is re-entered). */
const groups = [0, 0, 0, 0, 0, 0, 0, 0];

/**
 * RFC 4291 text → 128-bit value: eight hex groups, one "::" for a run of
 * zero groups, optionally a dotted IPv4 address as the last 32 bits; no zone
 * ("%eth0"). Written out rather than through ipaddr.js, whose parser finds
 * out by throwing (about 13 µs an address, most of a 100k-address apply),
 * and in one pass over the characters, the groups as numbers and the value
 * made once at the end. Property tests hold it equal to ipaddr.js and to the
 * split-and-regex version it replaced (address-parse*.test.ts).
 */
function parseIPv6(text: string): bigint | undefined {
  const len = text.length;
  if (len > 45) return undefined;
  let n = 0;
  /** Where "::" stands (the index of the group after it), or -1. */
  let gap = -1;
  let i = 0;
  if (text.charCodeAt(0) === 58) {
    // Only "::" may lead.
    if (text.charCodeAt(1) !== 58) return undefined;
    gap = 0;
    i = 2;
  }
  while (i < len) {
    const start = i;
    let v = 0;
    let h;
    while (i < len && (h = hexDigit(text.charCodeAt(i))) >= 0) {
      if (i - start === 4) return undefined;
      v = v * 16 + h;
      i++;
    }
    if (i < len && text.charCodeAt(i) === 46) {
      // A dotted IPv4 tail: the last two groups, and the end of the text.
      const t = parseIPv4(text, start);
      if (t < 0 || n > 6) return undefined;
      groups[n++] = t >>> 16;
      groups[n++] = t & 0xffff;
      break;
    }
    if (i === start || n === 8) return undefined;
    groups[n++] = v;
    if (i === len) break;
    if (text.charCodeAt(i) !== 58) return undefined;
    i++;
    if (i < len && text.charCodeAt(i) === 58) {
      if (gap >= 0) return undefined;
      gap = n;
      i++;
    } else if (i === len) return undefined; // a single trailing ':'
  }
  // "::" stands for one or more zero groups.
  if (gap < 0 ? n !== 8 : n > 7) return undefined;
  if (gap >= 0) {
    const zeros = 8 - n;
    for (let k = n - 1; k >= gap; k--) groups[k + zeros] = groups[k]!;
    for (let k = gap; k < gap + zeros; k++) groups[k] = 0;
  }
  const word = (k: number) => BigInt(groups[k]! * 65536 + groups[k + 1]!);
  return (word(0) << 96n) | (word(2) << 64n) | (word(4) << 32n) | word(6);
}

/** IPv4 dotted quad; IPv6 in the RFC 5952 form (lower case, the longest run of two or more zero groups as "::", the first of equals). */
export function formatAddress(family: Family, v: bigint): string {
  if (family === 'ipv4') {
    const n = Number(v);
    return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
  }
  // The groups from three 48-bit numbers (3 bigint operations, not 16), and the text built without arrays.
  const hi = Number(v >> 96n);
  const mid = Number((v >> 48n) & 0xffffffffffffn);
  const lo = Number(v & 0xffffffffffffn);
  const g = groups;
  g[0] = hi >>> 16;
  g[1] = hi & 0xffff;
  g[2] = Math.floor(mid / 2 ** 32);
  g[3] = Math.floor(mid / 65536) % 65536;
  g[4] = mid % 65536;
  g[5] = Math.floor(lo / 2 ** 32);
  g[6] = Math.floor(lo / 65536) % 65536;
  g[7] = lo % 65536;
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) (best = i), (bestLen = j - i);
    i = j;
  }
  let text = '';
  for (let i = 0; i < 8; i++) {
    if (i === best) {
      text += '::';
      i += bestLen - 1;
      continue;
    }
    if (i > 0 && i !== best + bestLen) text += ':';
    text += g[i]!.toString(16);
  }
  return text;
}

const HOST_LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/i;
const LAST_LABEL_DIGITS = /(?:^|\.)\d+\.?$/;

export function isHostname(s: string): boolean {
  if (s.length > 253) return false;
  // What explain asks of every flow's address, refused before the labels are split and tested: a last label all
  // digits (every IPv4 address), or a ':' (every IPv6 one, which no label admits).
  if (s.includes(':') || LAST_LABEL_DIGITS.test(s)) return false;
  const labels = s.replace(/\.$/, '').split('.');
  if (labels.some((l) => !HOST_LABEL.test(l))) return false;
  // A name whose last label is all digits is a mistyped address, not a hostname.
  return !/^\d+$/.test(labels[labels.length - 1]!);
}

export function parseDest(raw: string): ParsedDest {
  const text = raw.trim();
  if (text.startsWith('$')) {
    const name = text.slice(1);
    return /^[a-z0-9_-]{1,32}$/.test(name) ? { kind: 'set', name } : { kind: 'error', message: `bad set reference ${JSON.stringify(text)}` };
  }
  if (text.includes('*')) return parseName(text);
  if (text.includes('/')) {
    const [a, p, ...rest] = text.split('/');
    const addr = parseAddress(a!);
    if (!addr || rest.length || !/^\d{1,3}$/.test(p!)) return { kind: 'error', message: `bad CIDR ${quote(text)}` };
    const bits = BITS[addr.family];
    const len = Number(p);
    if (len > bits) return { kind: 'error', message: `prefix length /${len} is too long for ${addr.family} (at most /${bits})` };
    const hostBits = BigInt(bits - len);
    const mask = (1n << hostBits) - 1n;
    const lo = addr.value & ~mask;
    const hi = lo | mask;
    if ((addr.value & mask) !== 0n)
      return { kind: 'addr', family: addr.family, lo, hi, hostBitsFix: `${formatAddress(addr.family, lo)}/${len}` };
    return { kind: 'addr', family: addr.family, lo, hi };
  }
  if (looksLikeName(text) && !parseAddress(text)) return parseName(text);
  if (text.includes('-') && !isHostname(text)) {
    const parts = text.split('-');
    if (parts.length === 2) {
      const a = parseAddress(parts[0]!.trim());
      const b = parseAddress(parts[1]!.trim());
      if (!a || !b) return { kind: 'error', message: `bad address range ${quote(text)}`, hint: 'write a range as "FIRST-LAST", e.g. "192.0.2.10-192.0.2.20"' };
      if (a.family !== b.family) return { kind: 'error', message: `address range ${quote(text)} mixes ipv4 and ipv6` };
      if (a.value > b.value) return { kind: 'error', message: `address range ${quote(text)} ends before it starts`, hint: `did you mean "${parts[1]!.trim()}-${parts[0]!.trim()}"?` };
      return { kind: 'addr', family: a.family, lo: a.value, hi: b.value };
    }
  }
  const a = parseAddress(text);
  if (a) return { kind: 'addr', family: a.family, lo: a.value, hi: a.value };
  if (isHostname(text)) return { kind: 'host', name: text.toLowerCase().replace(/\.$/, '') };
  return { kind: 'error', message: `bad address ${quote(text)}`, hint: 'expected an IPv4/IPv6 address, CIDR, range "a-b", hostname or "$set"' };
}

function quote(s: string): string {
  return JSON.stringify(s);
}

/** Sort and merge overlapping or adjacent intervals into the minimal sorted list. */
export function mergeIntervals(xs: readonly Interval[]): Interval[] {
  const s = [...xs].sort((a, b) => (a.lo < b.lo ? -1 : a.lo > b.lo ? 1 : 0));
  const out: Interval[] = [];
  for (const x of s) {
    const last = out[out.length - 1];
    if (last && x.lo <= last.hi + 1n) {
      if (x.hi > last.hi) last.hi = x.hi;
    } else out.push({ lo: x.lo, hi: x.hi });
  }
  return out;
}

/** Whether v lies in a merged, sorted interval list (binary search). */
export function intervalsContain(xs: readonly Interval[], v: bigint): boolean {
  let lo = 0;
  let hi = xs.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const x = xs[mid]!;
    if (v < x.lo) hi = mid - 1;
    else if (v > x.hi) lo = mid + 1;
    else return true;
  }
  return false;
}

/** Whether every point of `inner` lies in `outer` (both merged and sorted). */
export function intervalsCover(outer: readonly Interval[], inner: readonly Interval[]): boolean {
  let j = 0;
  for (const x of inner) {
    while (j < outer.length && outer[j]!.hi < x.lo) j++;
    const o = outer[j];
    if (!o || o.lo > x.lo || o.hi < x.hi) return false;
  }
  return true;
}

/** Split an interval into the minimal list of CIDR prefixes (for backends without ranges). */
export function intervalToCidrs(family: Family, x: Interval): string[] {
  const bits = BigInt(BITS[family]);
  const out: string[] = [];
  let lo = x.lo;
  while (lo <= x.hi) {
    let size = 0n;
    while (size < bits) {
      const next = size + 1n;
      const block = 1n << next;
      if ((lo & (block - 1n)) !== 0n || lo + block - 1n > x.hi) break;
      size = next;
    }
    out.push(`${formatAddress(family, lo)}/${bits - size}`);
    lo += 1n << size;
  }
  return out;
}

export function formatInterval(family: Family, x: Interval): string {
  if (x.lo === x.hi) return formatAddress(family, x.lo);
  const cidrs = intervalToCidrs(family, x);
  if (cidrs.length === 1) return cidrs[0]!;
  return `${formatAddress(family, x.lo)}-${formatAddress(family, x.hi)}`;
}

/** Ranges no name should ever send a program to: an answer naming one is dropped, not admitted (D16). */
const SPECIAL: { family: Family; cidr: string; what: string }[] = [
  { family: 'ipv4', cidr: '0.0.0.0/8', what: 'this-network (0.0.0.0/8)' },
  { family: 'ipv4', cidr: '127.0.0.0/8', what: 'loopback' },
  { family: 'ipv4', cidr: '169.254.0.0/16', what: 'link-local, where the cloud metadata service 169.254.169.254 lives' },
  { family: 'ipv4', cidr: '224.0.0.0/4', what: 'multicast' },
  { family: 'ipv4', cidr: '240.0.0.0/4', what: 'reserved or broadcast' },
  { family: 'ipv6', cidr: '::/128', what: 'unspecified' },
  { family: 'ipv6', cidr: '::1/128', what: 'loopback' },
  { family: 'ipv6', cidr: '::ffff:0:0/96', what: 'IPv4-mapped, never on the wire as such' },
  { family: 'ipv6', cidr: 'fe80::/10', what: 'link-local' },
  { family: 'ipv6', cidr: 'ff00::/8', what: 'multicast' },
];
let specialRanges: { family: Family; lo: bigint; hi: bigint; what: string }[] | undefined;

/** What special-purpose range `address` is in (loopback, link-local, …), or undefined for an ordinary address. */
export function specialPurpose(address: string): string | undefined {
  // The forwarder asks this for every address of every named answer: rule out the ordinary ones from the first
  // octet or hextet alone (parsing costs ~8 µs an address); every special range starts with 0, 127, 169, 224–255,
  // or a hextet of 0, fe80–febf or ff00–ffff.
  const colon = address.indexOf(':');
  if (colon < 0) {
    const first = Number(address.slice(0, address.indexOf('.')));
    if (first > 0 && first !== 127 && first !== 169 && first < 224) return undefined;
  } else {
    const h = colon === 0 ? 0 : parseInt(address.slice(0, colon), 16);
    if (h > 0 && (h < 0xfe80 || (h >= 0xfec0 && h < 0xff00))) return undefined;
  }
  const a = parseAddress(address);
  if (!a) return undefined;
  specialRanges ??= SPECIAL.map((s) => {
    const d = parseDest(s.cidr);
    if (d.kind !== 'addr') throw new Error(`bad built-in range ${s.cidr}`);
    return { family: s.family, lo: d.lo, hi: d.hi, what: s.what };
  });
  return specialRanges.find((r) => r.family === a.family && r.lo <= a.value && a.value <= r.hi)?.what;
}
