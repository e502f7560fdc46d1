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
  const value = parseIPv4(text);
  return value === undefined ? undefined : { family: 'ipv4', value };
}

const DECIMAL_OCTET = /^(?:0|[1-9]\d{0,2})$/;
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

/** "a.b.c.d", each part 0–255 without leading zeros (as ipaddr.js's isValidFourPartDecimal). */
function parseIPv4(text: string): bigint | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let v = 0;
  for (const p of parts) {
    if (!DECIMAL_OCTET.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    v = v * 256 + n;
  }
  return BigInt(v);
}

/**
 * RFC 4291 text → 128-bit value: eight hex groups, one "::" for a run of
 * zero groups, optionally a dotted IPv4 address as the last 32 bits; no zone
 * ("%eth0"). Written out rather than through ipaddr.js, whose parser finds
 * out by throwing (about 13 µs an address, most of a 100k-address apply).
 * A property test holds it equal to ipaddr.js.
 */
function parseIPv6(text: string): bigint | undefined {
  if (text.length > 45) return undefined;
  let hex = text;
  const last = text.lastIndexOf(':');
  if (text.indexOf('.', last) >= 0) {
    // A dotted IPv4 tail is the last two groups.
    const tail = parseIPv4(text.slice(last + 1));
    if (tail === undefined) return undefined;
    const t = Number(tail);
    hex = `${text.slice(0, last + 1)}${(t >>> 16).toString(16)}:${(t & 0xffff).toString(16)}`;
  }
  const halves = hex.split('::');
  if (halves.length > 2) return undefined;
  const groups = (h: string) => (h === '' ? [] : h.split(':'));
  const left = groups(halves[0]!);
  const right = halves.length === 2 ? groups(halves[1]!) : [];
  const n = left.length + right.length;
  // "::" stands for one or more zero groups.
  if (halves.length === 2 ? n > 7 : n !== 8) return undefined;
  let v = 0n;
  for (const g of left) {
    if (!HEX_GROUP.test(g)) return undefined;
    v = (v << 16n) | BigInt(parseInt(g, 16));
  }
  v <<= 16n * BigInt(8 - n);
  for (const g of right) {
    if (!HEX_GROUP.test(g)) return undefined;
    v = (v << 16n) | BigInt(parseInt(g, 16));
  }
  return v;
}

/** IPv4 dotted quad; IPv6 in the RFC 5952 form (lower case, the longest run of two or more zero groups as "::", the first of equals). */
export function formatAddress(family: Family, v: bigint): string {
  if (family === 'ipv4') {
    const n = Number(v);
    return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
  }
  const g: number[] = [];
  for (let s = 112n; s >= 0n; s -= 16n) g.push(Number((v >> s) & 0xffffn));
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
  const hexs = g.map((x) => x.toString(16));
  if (best < 0) return hexs.join(':');
  return `${hexs.slice(0, best).join(':')}::${hexs.slice(best + bestLen).join(':')}`;
}

const HOST_LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/i;

export function isHostname(s: string): boolean {
  if (s.length > 253) return false;
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
