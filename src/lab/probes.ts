/**
 * Which flows `egress lab` tries: each rule's own destinations, ports and
 * users (allow: expected through; deny: expected blocked; the deny's
 * `except`: expected through), and the space right around each allow —
 * the neighbouring addresses, ports ±1, and a user the rule does not name —
 * which should be blocked unless another rule says otherwise. The verdict
 * every probe is held against is explain's, never a guess made here.
 *
 * Only documentation addresses are probed (the lab's world answers on those
 * and nothing else); the rest is listed as not probed, with the reason.
 */
import type { Ir, IrInterval, IrMatch, IrOwner, IrRule } from '../ir/types.js';
import { formatAddress, intervalsContain, type Family } from '../policy/address.js';
import { icmpTypeName, icmpTypeNumber } from '../policy/protocols.js';
import type { Accounts } from '../resolve/resolver.js';
import type { Probe, ProbeProto } from './probe.js';
import { documentationIntervals } from './world.js';

/** guard: DNS that bypasses the forwarder under `dns.proxy` (names.ts). unlisted: from the lab's container on an interface no forward source covers (forward.ts). */
export type ProbeWhy = 'allow' | 'deny' | 'except' | 'around' | 'guard' | 'unlisted';

export interface PlannedProbe {
  probe: Probe;
  /** The rule this probe exercises (or whose surroundings it tries). */
  rule: string;
  why: ProbeWhy;
}

export interface NotProbed {
  rule: string;
  what: string;
  why: string;
}

export interface Plan {
  probes: PlannedProbe[];
  notProbed: NotProbed[];
}

/** Most intervals / port ranges probed per rule, so a 100k-address set does not mean 100k probes. */
export const MAX_POINTS_PER_RULE = 4;
/** A user no policy names: the "someone else" of an around probe when root is named. */
export const NOBODY = { uid: 65534, gid: 65534 };

export interface Owner {
  uid: number;
  gid: number;
}
export interface L4Point {
  proto: ProbeProto;
  port?: number;
}

/**
 * `named`: the identities the policy names (its users, and root with each of
 * its groups); each rule's first point is also tried as every one of them.
 */
export function planProbes(ir: Ir, accounts: Accounts, named: readonly Owner[] = []): Plan {
  const probes: PlannedProbe[] = [];
  const notProbed: NotProbed[] = [];
  const seen = new Set<string>();
  const add = (rule: string, why: ProbeWhy, family: Family, dst: bigint, l4: L4Point, owner: Owner) => {
    const probe: Probe = { proto: l4.proto, dst: formatAddress(family, dst), ...(l4.port !== undefined ? { port: l4.port } : {}), uid: owner.uid, gid: owner.gid };
    const key = `${probe.proto} ${probe.dst} ${probe.port ?? ''} ${probe.uid} ${probe.gid}`;
    if (seen.has(key)) return;
    seen.add(key);
    probes.push({ probe, rule, why });
  };
  const noted = new Set<string>();
  const skip = (rule: string, what: string, why: string) => {
    const k = `${rule}\0${what}\0${why}`;
    if (noted.has(k)) return;
    noted.add(k);
    notProbed.push({ rule, what, why });
  };
  const spare = spareAddresses(ir);

  for (const r of ir.rules) {
    const name = r.origin.name;
    const fam = r.family;
    const pts = rulePoints(r, spare[fam], (what, why) => skip(name, what, why));
    if (!pts) continue;
    const owners = pickOwners(r, accounts);
    const why: ProbeWhy = r.origin.action === 'allow' ? 'allow' : 'deny';
    for (const d of pts.dsts) for (const l of pts.l4s) for (const o of owners) add(name, why, fam, d, l, o);

    const base = { ...pts.base, owner: owners[0]! };
    if (r.origin.action === 'allow') {
      for (const d of pts.aroundDsts) add(name, 'around', fam, d, base.l4, base.owner);
      for (const l of pts.aroundL4s) add(name, 'around', fam, base.dst, l, base.owner);
      if (r.users || r.groups) add(name, 'around', fam, base.dst, base.l4, otherOwner(r, accounts));
    }
    for (const e of pts.excepts) {
      const eo = e.match.users || e.match.groups ? pickOwners(e.match, accounts)[0] : base.owner;
      if (e.dst !== undefined && e.l4 && eo) add(name, 'except', fam, e.dst, e.l4, eo);
    }
    // Every named identity at the rule's first point: the rule's own users are the rule's probes, others its surroundings.
    const own = (o: Owner) => !(r.users || r.groups) || owners.some((x) => x.uid === o.uid && x.gid === o.gid);
    for (const o of named) add(name, own(o) ? why : 'around', fam, base.dst, base.l4, o);
    if (r.via) skip(name, `via ${r.via.join(', ')}`, "probes leave through the lab's own veth interface, so they do not match via");
  }
  return { probes, notProbed };
}

/** Where a rule is probed, whoever sends: see rulePoints. */
export interface RulePoints {
  /** Its destinations (interval ends in the documentation ranges, or a spare address for "anywhere"). */
  dsts: bigint[];
  l4s: L4Point[];
  /** The first destination and L4 point: where the space around the rule is tried. */
  base: { dst: bigint; l4: L4Point };
  /** Addresses just outside its intervals (tried at the base L4 point). */
  aroundDsts: bigint[];
  /** Its ports ±1 (tried at the base destination). */
  aroundL4s: L4Point[];
  /** Each except's first point (the except's own destination and L4, else the base's). */
  excepts: { match: IrMatch; dst?: bigint; l4?: L4Point }[];
}

/**
 * Where rule `r` is probed, for the host's probes (planProbes) and the
 * containers' (forward.ts) alike; owners are the caller's business.
 * Undefined when none of its destinations or protocols can be probed (`skip`
 * hears why).
 */
export function rulePoints(r: IrRule, spare: bigint, skip: (what: string, why: string) => void): RulePoints | undefined {
  const dsts = pickDestinations(r, r, (what) => skip(what, 'outside documentation ranges'), spare);
  if (!dsts.points.length) return undefined;
  const l4s = pickL4(r, r.family, skip);
  if (!l4s.length) return undefined;
  const base = { dst: dsts.points[0]!, l4: l4s[0]! };
  const excepts = r.except.map((e) => {
    const dst = e.dst ? pickDestinations(e, r, () => {}, spare).points[0] : base.dst;
    const l4 = e.l4 ? pickL4(e, r.family, () => {})[0] : base.l4;
    return { match: e, ...(dst !== undefined ? { dst } : {}), ...(l4 ? { l4 } : {}) };
  });
  return { dsts: dsts.points, l4s, base, aroundDsts: dsts.around, aroundL4s: aroundL4(r), excepts };
}

/** Destinations of rule (or except) `m`: interval ends inside the documentation ranges, and their neighbours. */
function pickDestinations(m: IrMatch, r: IrRule, outside: (what: string) => void, spare: bigint): { points: bigint[]; around: bigint[] } {
  if (!m.dst) return { points: [spare], around: [] };
  const doc = documentationIntervals(r.family);
  const points: bigint[] = [];
  const around: bigint[] = [];
  let used = 0;
  for (const x of m.dst) {
    const parts = doc.map((d) => ({ lo: x.lo > d.lo ? x.lo : d.lo, hi: x.hi < d.hi ? x.hi : d.hi, doc: d })).filter((p) => p.lo <= p.hi);
    if (!parts.length) {
      outside(sourceText(r, x));
      continue;
    }
    for (const p of parts) {
      if (used++ >= MAX_POINTS_PER_RULE) break;
      points.push(p.lo);
      if (p.hi !== p.lo) points.push(p.hi);
      for (const n of [p.lo - 1n, p.hi + 1n]) if (n >= p.doc.lo && n <= p.doc.hi && !intervalsContain(m.dst, n)) around.push(n);
    }
  }
  return { points, around };
}

function sourceText(r: IrRule, x: IrInterval): string {
  const texts = [...new Set(x.src.map((i) => r.sources[i]?.text).filter((t): t is string => !!t))];
  return texts.length ? texts.join(', ') : formatAddress(r.family, x.lo) + (x.hi !== x.lo ? `-${formatAddress(r.family, x.hi)}` : '');
}

const WHOLE_PROTO_PORT: Record<'tcp' | 'udp', number> = { tcp: 443, udp: 53 };

export function pickL4(m: IrMatch, fam: Family, skip: (what: string, why: string) => void): L4Point[] {
  if (!m.l4) return [{ proto: 'tcp', port: 443 }, { proto: 'udp', port: 53 }, { proto: 'icmp' }];
  const out: L4Point[] = [];
  for (const p of m.l4.ports) {
    if (p.proto === 'sctp') {
      skip(`sctp ${p.ranges.map(([a, b]) => (a === b ? a : `${a}-${b}`)).join(', ')}`, 'SCTP cannot be probed (no SCTP sockets in node)');
      continue;
    }
    let n = 0;
    for (const [lo, hi] of p.ranges) {
      if (n++ >= MAX_POINTS_PER_RULE) break;
      if (lo <= 1 && hi === 65535) {
        out.push({ proto: p.proto, port: WHOLE_PROTO_PORT[p.proto] });
        continue;
      }
      out.push({ proto: p.proto, port: Math.max(lo, 1) });
      if (hi !== lo) out.push({ proto: p.proto, port: hi });
    }
  }
  const echo = icmpTypeNumber('echo-request', fam)!;
  if (m.l4.icmp === 'any' || m.l4.icmp.includes(echo)) out.push({ proto: 'icmp' });
  const others = m.l4.icmp === 'any' ? [] : m.l4.icmp.filter((t) => t !== echo);
  if (others.length) skip(`icmp ${others.map((t) => icmpTypeName(fam, t)).join(', ')}`, 'only echo-request can be probed');
  return out;
}

export function aroundL4(r: IrRule): L4Point[] {
  const out: L4Point[] = [];
  for (const p of r.l4?.ports ?? []) {
    if (p.proto === 'sctp') continue;
    const inRule = (port: number) => p.ranges.some(([a, b]) => a <= port && port <= b);
    for (const [lo, hi] of p.ranges.slice(0, MAX_POINTS_PER_RULE)) for (const n of [lo - 1, hi + 1]) if (n >= 1 && n <= 65535 && !inRule(n)) out.push({ proto: p.proto, port: n });
  }
  return out;
}

function ownerId(o: IrOwner, table: Map<string, number>): number | undefined {
  return o.id ?? (o.name !== undefined ? table.get(o.name) : undefined);
}

/** The identities a rule's own probes run as: its users (with their primary group), its groups (as root), else root. */
export function pickOwners(m: IrMatch, accounts: Accounts): Owner[] {
  const out: Owner[] = [];
  for (const u of m.users ?? []) {
    const uid = ownerId(u, accounts.users);
    if (uid === undefined) continue;
    const gid = m.groups?.length ? ownerId(m.groups[0]!, accounts.groups) : undefined;
    out.push({ uid, gid: gid ?? accounts.primaryGroup.get(uid) ?? uid });
  }
  if (!m.users)
    for (const g of m.groups ?? []) {
      const gid = ownerId(g, accounts.groups);
      if (gid !== undefined) out.push({ uid: 0, gid });
    }
  return out.length ? out : [{ uid: 0, gid: 0 }];
}

/** Someone the rule does not name: root, or else nobody. */
export function otherOwner(r: IrRule, accounts: Accounts): Owner {
  const named = new Set((r.users ?? []).map((u) => ownerId(u, accounts.users)));
  const namedGroups = new Set((r.groups ?? []).map((g) => ownerId(g, accounts.groups)));
  if (!named.has(0) && !namedGroups.has(0)) return { uid: 0, gid: 0 };
  return NOBODY;
}

/** Per family, a documentation address no rule names (the host's nor the forward scope's): where "anywhere" rules are probed. */
export function spareAddresses(ir: Ir): Record<Family, bigint> {
  const rules = [...ir.rules, ...(ir.forward?.rules ?? [])];
  const taken = (fam: Family, v: bigint) => rules.some((r) => r.family === fam && [r, ...r.except].some((m) => m.dst && intervalsContain(m.dst, v)));
  const pick = (fam: Family): bigint => {
    for (const d of [...documentationIntervals(fam)].reverse()) {
      for (let v = d.hi - 1n, n = 0; v > d.lo && n < 4096; v--, n++) if (!taken(fam, v)) return v;
    }
    return documentationIntervals(fam)[0]!.lo + 1n;
  };
  return { ipv4: pick('ipv4'), ipv6: pick('ipv6') };
}
