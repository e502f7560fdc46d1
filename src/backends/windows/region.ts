/**
 * Regions of one family's flow space — destination × protocol/port/ICMP type ×
 * user — and their difference, for the two Windows targets.
 *
 * Both targets lack something our semantics need: Windows Firewall block
 * rules carry no exceptions, and the Windows CE firewall gives no documented
 * way for a block to win over an overlapping allow. So a deny's `except` is
 * compiled as "the deny minus its exceptions", and (on CE) an allow as "the
 * allow minus every deny", each as a list of regions a single target rule can
 * hold. A difference that would need "every protocol but these" or "every
 * ICMP type but these" has no finite form in either target: it is reported as
 * `inexpressible` and the backend refuses the rule; it never widens.
 *
 * Used by backends/windows and backends/wince (one copy of the algebra, so
 * both refuse and split exactly alike).
 */
import { BITS, type Family, type Interval } from '../../policy/address.js';
import type { L4Proto } from '../../policy/protocols.js';
import type { IrL4, IrMatch } from '../../ir/types.js';

/** A protocol/port/ICMP selection; 'any' = every IP protocol (also ones without ports). */
export type L4Region = 'any' | { ports: Partial<Record<L4Proto, [number, number][]>>; icmp: number[] | 'any' };

/** Users by name: `allow` ('all' or a list) minus `deny`. */
export interface UserRegion {
  allow: 'all' | string[];
  deny: string[];
}

export interface Region {
  family: Family;
  /** Merged, sorted; undefined = anywhere in the family. */
  dst?: Interval[];
  /** Hostnames whose addresses are looked up on the target when the rules are loaded (windows only). */
  hosts?: string[];
  l4: L4Region;
  users: UserRegion;
}

/** Which selector made a difference impossible to write down. */
export type Inexpressible = { inexpressible: 'ports' | 'icmp' | 'hostnames' };

export const ALL_USERS: UserRegion = { allow: 'all', deny: [] };
const PROTOS: readonly L4Proto[] = ['sctp', 'tcp', 'udp'];

export function l4FromIr(l4: IrL4 | undefined): L4Region {
  if (!l4) return 'any';
  const ports: Partial<Record<L4Proto, [number, number][]>> = {};
  for (const p of l4.ports) ports[p.proto] = p.ranges.map(([a, b]) => [a, b]);
  return { ports, icmp: l4.icmp === 'any' ? 'any' : [...l4.icmp] };
}

/** The region of one IR match (a rule or one `except` alternative); users by name only (callers refuse numeric ids first). */
export function regionFromIr(m: IrMatch, family: Family): Region {
  const r: Region = { family, l4: l4FromIr(m.l4), users: m.users ? { allow: [...new Set(m.users.map((u) => u.name!))].sort(), deny: [] } : ALL_USERS };
  // `to: [0.0.0.0/0]` is "anywhere" too.
  const dst = m.dst && normDst(family, m.dst.map((x) => ({ lo: x.lo, hi: x.hi })));
  if (dst) r.dst = dst;
  if (m.hosts?.length) r.hosts = [...m.hosts];
  return r;
}

// ---- destinations ----

function fullRange(family: Family): Interval[] {
  return [{ lo: 0n, hi: (1n << BigInt(BITS[family])) - 1n }];
}

function dstOf(r: Region): Interval[] {
  return r.dst ?? fullRange(r.family);
}

export function intersectIntervals(a: readonly Interval[], b: readonly Interval[]): Interval[] {
  const out: Interval[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const x = a[i]!;
    const y = b[j]!;
    const lo = x.lo > y.lo ? x.lo : y.lo;
    const hi = x.hi < y.hi ? x.hi : y.hi;
    if (lo <= hi) out.push({ lo, hi });
    if (x.hi < y.hi) i++;
    else j++;
  }
  return out;
}

export function subtractIntervals(a: readonly Interval[], b: readonly Interval[]): Interval[] {
  const out: Interval[] = [];
  for (const x of a) {
    let lo = x.lo;
    for (const y of b) {
      if (y.hi < lo || y.lo > x.hi) continue;
      if (y.lo > lo) out.push({ lo, hi: y.lo - 1n });
      lo = y.hi + 1n;
      if (lo > x.hi) break;
    }
    if (lo <= x.hi) out.push({ lo, hi: x.hi });
  }
  return out;
}

/** undefined again when the list is the whole family, so "anywhere" stays recognisable. */
function normDst(family: Family, xs: Interval[]): Interval[] | undefined {
  const f = fullRange(family)[0]!;
  return xs.length === 1 && xs[0]!.lo === f.lo && xs[0]!.hi === f.hi ? undefined : xs;
}

// ---- protocols, ports, ICMP types ----

function intersectRanges(a: [number, number][], b: [number, number][]): [number, number][] {
  const out: [number, number][] = [];
  for (const [a0, a1] of a)
    for (const [b0, b1] of b) {
      const lo = Math.max(a0, b0);
      const hi = Math.min(a1, b1);
      if (lo <= hi) out.push([lo, hi]);
    }
  return out.sort((x, y) => x[0] - y[0]);
}

function subtractRanges(a: [number, number][], b: [number, number][]): [number, number][] {
  let cur = a.map(([x, y]): [number, number] => [x, y]);
  for (const [b0, b1] of b) {
    const next: [number, number][] = [];
    for (const [a0, a1] of cur) {
      if (b1 < a0 || b0 > a1) next.push([a0, a1]);
      else {
        if (a0 < b0) next.push([a0, b0 - 1]);
        if (b1 < a1) next.push([b1 + 1, a1]);
      }
    }
    cur = next;
  }
  return cur;
}

export function l4IsEmpty(l: L4Region): boolean {
  if (l === 'any') return false;
  return PROTOS.every((p) => !l.ports[p]?.length) && l.icmp !== 'any' && l.icmp.length === 0;
}

export function intersectL4(a: L4Region, b: L4Region): L4Region {
  if (a === 'any') return b;
  if (b === 'any') return a;
  const ports: Partial<Record<L4Proto, [number, number][]>> = {};
  for (const p of PROTOS) {
    const x = a.ports[p];
    const y = b.ports[p];
    if (x && y) {
      const r = intersectRanges(x, y);
      if (r.length) ports[p] = r;
    }
  }
  const icmp = a.icmp === 'any' ? b.icmp : b.icmp === 'any' ? a.icmp : a.icmp.filter((t) => (b.icmp as number[]).includes(t));
  return { ports, icmp };
}

/** a − b, or 'inexpressible' when the rest would be "every protocol but …" or "every ICMP type but …". */
export function subtractL4(a: L4Region, b: L4Region): L4Region | Inexpressible {
  if (b === 'any') return { ports: {}, icmp: [] };
  if (a === 'any') return l4IsEmpty(b) ? a : { inexpressible: b.icmp !== 'any' && b.icmp.length ? 'icmp' : 'ports' };
  const ports: Partial<Record<L4Proto, [number, number][]>> = {};
  for (const p of PROTOS) {
    const x = a.ports[p];
    if (!x) continue;
    const r = b.ports[p] ? subtractRanges(x, b.ports[p]!) : x;
    if (r.length) ports[p] = r;
  }
  let icmp: number[] | 'any';
  if (b.icmp === 'any') icmp = [];
  else if (a.icmp === 'any') {
    if (b.icmp.length) return { inexpressible: 'icmp' };
    icmp = 'any';
  } else icmp = a.icmp.filter((t) => !(b.icmp as number[]).includes(t));
  return { ports, icmp };
}

// ---- users ----

export function usersIsEmpty(u: UserRegion): boolean {
  return u.allow !== 'all' && u.allow.every((n) => u.deny.includes(n));
}

export function intersectUsers(a: UserRegion, b: UserRegion): UserRegion {
  const allow = a.allow === 'all' ? b.allow : b.allow === 'all' ? a.allow : a.allow.filter((n) => (b.allow as string[]).includes(n));
  return { allow, deny: [...new Set([...a.deny, ...b.deny])].sort() };
}

/** a − b; b comes from an `except`, which only ever names users to allow. */
export function subtractUsers(a: UserRegion, b: UserRegion): UserRegion {
  if (b.allow === 'all') return { allow: [], deny: [] };
  const allow = a.allow === 'all' ? a.allow : a.allow.filter((n) => !b.deny.includes(n));
  return { allow, deny: [...new Set([...a.deny, ...b.allow])].sort() };
}

// ---- regions ----

export function regionIsEmpty(r: Region): boolean {
  return (r.dst !== undefined && r.dst.length === 0 && !r.hosts?.length) || l4IsEmpty(r.l4) || usersIsEmpty(r.users);
}

/** Whether a region covers the family's whole flow space for every user. */
export function regionIsEverything(r: Region): boolean {
  return r.dst === undefined && r.l4 === 'any' && r.users.allow === 'all' && r.users.deny.length === 0;
}

/**
 * a − b as disjoint regions: the part of `a` outside b's destinations, then
 * the part inside them but outside b's protocols, then the part inside both
 * but outside b's users.
 */
export function subtractRegion(a: Region, b: Region): Region[] | Inexpressible {
  if (!regionsOverlap(a, b)) return [a];
  const out: Region[] = [];
  const push = (r: Region) => {
    if (!regionIsEmpty(r)) out.push(r);
  };
  const withDst = (r: Region, dst: Interval[] | undefined): Region => {
    const { dst: _old, ...rest } = r;
    return dst === undefined ? rest : { ...rest, dst };
  };
  let inside = a;
  if (b.dst !== undefined) {
    // Destinations from hostnames are only known on the target; a cut through them cannot be made here.
    if (a.hosts?.length || b.hosts?.length) return { inexpressible: 'hostnames' };
    push(withDst(a, normDst(a.family, subtractIntervals(dstOf(a), b.dst))));
    inside = withDst(a, normDst(a.family, intersectIntervals(dstOf(a), b.dst)));
  }
  const l4Out = subtractL4(a.l4, b.l4);
  if ('inexpressible' in (l4Out as object)) return l4Out as Inexpressible;
  push({ ...inside, l4: l4Out as L4Region });
  push({ ...inside, l4: intersectL4(a.l4, b.l4), users: subtractUsers(a.users, b.users) });
  return out;
}

/** Every region of `as` minus every region of `bs`. */
export function subtractRegions(as: Region[], bs: Region[]): Region[] | Inexpressible {
  let cur = as;
  for (const b of bs) {
    const next: Region[] = [];
    for (const a of cur) {
      const d = subtractRegion(a, b);
      if ('inexpressible' in d) return d;
      next.push(...d);
    }
    cur = next;
  }
  return cur;
}

/** Whether two regions share a flow (a deny that overlaps an allow, say). */
export function regionsOverlap(a: Region, b: Region): boolean {
  if (a.family !== b.family) return false;
  if (a.dst && b.dst && !a.hosts?.length && !b.hosts?.length && intersectIntervals(a.dst, b.dst).length === 0) return false;
  if (l4IsEmpty(intersectL4(a.l4, b.l4))) return false;
  return !usersIsEmpty(intersectUsers(a.users, b.users));
}
