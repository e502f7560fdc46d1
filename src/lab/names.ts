/**
 * Probes for names that follow DNS (`dns.proxy`), and the zone the world's
 * DNS server answers them from (world-dns.ts).
 *
 * A name probe resolves the name as a program does — it asks the server its
 * resolv.conf names, the world's; the ruleset redirects the query to the
 * forwarder running in the host namespace — and connects at once to every
 * address answered, on the rule's ports, as the rule's users. explain's
 * verdict for the same flow is the one `explain --to NAME` gives: the
 * forwarder published the answer into every allow rule whose names cover it
 * before the program got it (sim/dns.ts `withAnswer`).
 *
 * Around each name rule: another port, another user, an unlisted name, a
 * wildcard's bare domain (never covered by "*."), and an address of the
 * rule's pool range that no answer ever holds. Each deny name is asked for
 * and must be REFUSED. And DNS over TLS (853) straight to the upstream as an
 * unprivileged user must be rejected by the guard.
 *
 * Every name gets its own addresses, all away from every address a rule
 * names (and its neighbours) and from every other probe's destination: an
 * address is only ever answered for one name, so what a set holds never
 * depends on which other probe ran first, and the plain probes are not
 * touched by what the forwarder published.
 */
import type { Ir, IrRule } from '../ir/types.js';
import { formatAddress, intervalsContain, parseAddress, type Family } from '../policy/address.js';
import { isWildcard, nameMatches } from '../policy/dns-name.js';
import type { Accounts } from '../resolve/resolver.js';
import type { Probe } from './probe.js';
import { aroundL4, MAX_POINTS_PER_RULE, NOBODY, otherOwner, pickL4, pickOwners, type L4Point, type NotProbed, type Owner, type PlannedProbe } from './probes.js';
import { documentationIntervals, inDocumentation } from './world.js';
import type { WorldZone, ZoneEntry } from './world-dns.js';

/** The world's DNS server when the policy names no documentation upstream. */
export const LAB_UPSTREAM: readonly { address: string; port: number }[] = [
  { address: '192.0.2.53', port: 53 },
  { address: '2001:db8::53', port: 53 },
];
/** Addresses handed out per name and family: more than one answer holds, so answers rotate. */
export const POOL_SIZE = 3;
/** Where IPv6 pools start (one address after another from here). */
const V6_POOL_BASE = 0x20010db80d4500000000000000000000n;
/** The rule name the guard's probes are listed under. */
export const GUARD_RULE = 'dns.proxy';
/** DNS over TLS: the port the guard's probes try (port 53 is redirected to the forwarder, not rejected). */
export const DOT_PORT = 853;
/** The name udp/53 probes ask for under `dns.proxy` (they reach the forwarder, which only answers DNS). */
export const PROBE_QUERY_NAME = 'egress-lab-probe.example';

export interface NamePlan {
  probes: PlannedProbe[];
  notProbed: NotProbed[];
  zone: WorldZone;
  /** What a name probe's answer may hold: its name's pool in its family (anything else is an error). */
  pools: Map<string, string[]>;
  /** Where the world's DNS server listens: the forwarder's upstream. */
  upstream: { address: string; port: number }[];
}

export function poolKey(name: string, family: Family): string {
  return `${family} ${name}`;
}

/**
 * `taken`: destinations other probes use (their addresses are never
 * handed out). `upstream`: the policy's `dns.upstream`; the world serves DNS
 * on its documentation addresses, or on LAB_UPSTREAM when it has none.
 */
export function planNames(ir: Ir, accounts: Accounts, taken: readonly string[] = []): NamePlan {
  const probes: PlannedProbe[] = [];
  const notProbed: NotProbed[] = [];
  const dns = ir.dns;
  const zone: WorldZone = { servers: [], names: {}, other: { a: [], aaaa: [] } };
  const pools = new Map<string, string[]>();
  if (!dns) return { probes, notProbed, zone, pools, upstream: [] };

  const docUpstream = dns.upstream.filter((u) => {
    const a = parseAddress(u.address);
    return a && inDocumentation(a.family, a.value);
  });
  for (const u of dns.upstream)
    if (!docUpstream.includes(u))
      notProbed.push({ rule: GUARD_RULE, what: `upstream ${u.address}`, why: `not a documentation address: the rehearsal's forwarder asks the world's DNS server (${LAB_UPSTREAM.map((l) => l.address).join(', ')}) instead` });
  const upstream = docUpstream.length ? docUpstream.map((u) => ({ ...u })) : LAB_UPSTREAM.map((u) => ({ ...u }));
  zone.servers = upstream;

  const alloc = allocator(ir, [...taken, ...upstream.map((u) => u.address)]);
  const entry = (name: string): ZoneEntry => (zone.names[name] ??= { a: [], aaaa: [] });
  const pool = (name: string, fam: Family): string[] => {
    const key = poolKey(name, fam);
    let p = pools.get(key);
    if (!p) {
      p = Array.from({ length: POOL_SIZE }, () => alloc(fam));
      pools.set(key, p);
      entry(name)[fam === 'ipv4' ? 'a' : 'aaaa'] = p;
    }
    return p;
  };
  // What any other name gets: the probes' own udp/53 queries, and names nobody planned.
  zone.other = { a: [alloc('ipv4'), alloc('ipv4')], aaaa: [alloc('ipv6'), alloc('ipv6')] };
  const seen = new Set<string>();
  const nameProbe = (rule: string, why: PlannedProbe['why'], name: string, fam: Family, l4: L4Point, o: Owner) => {
    const probe: Probe = { proto: l4.proto, dst: pool(name, fam)[0]!, name, ...(l4.port !== undefined ? { port: l4.port } : {}), uid: o.uid, gid: o.gid };
    const key = `${name} ${fam} ${probe.proto} ${probe.port ?? ''} ${o.uid} ${o.gid}`;
    if (seen.has(key)) return;
    seen.add(key);
    probes.push({ probe, rule, why });
  };
  const patterns = ir.rules.flatMap((r) => r.sets?.flatMap((s) => (s.kind === 'dns' ? (s.patterns ?? []) : [])) ?? []).concat(dns.refused.map((x) => x.pattern));
  const unlisted = freeName(patterns);

  let firstL4: L4Point | undefined;
  for (const r of ir.rules) {
    const set = r.sets?.find((s) => s.kind === 'dns');
    if (!set || r.origin.action !== 'allow') continue;
    const rule = r.origin.name;
    const fam = r.family;
    const all = set.patterns ?? [];
    const used = all.slice(0, MAX_POINTS_PER_RULE);
    if (all.length > used.length) skipOnce(notProbed, { rule, what: all.slice(used.length).join(', '), why: `at most ${MAX_POINTS_PER_RULE} names a rule are rehearsed` });
    const l4s = pickL4(r, fam, (what, why) => skipOnce(notProbed, { rule, what, why }));
    if (!l4s.length) continue;
    const owners = ownersOf(r, accounts);
    const names = used.flatMap((p) => (isWildcard(p) ? depths(p.slice(2)) : [p]));
    const before = probes.length;
    try {
      for (const n of names) for (const l of l4s) for (const o of owners) nameProbe(rule, 'allow', n, fam, l, o);

      const base = { name: names[0]!, l4: l4s[0]!, owner: owners[0]! };
      firstL4 ??= base.l4;
      for (const l of aroundL4(r)) nameProbe(rule, 'around', base.name, fam, l, base.owner);
      if (r.users || r.groups) nameProbe(rule, 'around', base.name, fam, base.l4, otherOwner(r, accounts));
      for (const p of used.filter(isWildcard)) nameProbe(rule, 'around', p.slice(2), fam, base.l4, base.owner);
      if (unlisted !== undefined) nameProbe(rule, 'around', unlisted, fam, base.l4, base.owner);
      else skipOnce(notProbed, { rule, what: 'an unlisted name', why: "the policy's names cover every name the lab would try" });
      // An address of the same range no answer ever holds: the set admits what was answered, nothing near it.
      const never = alloc(fam);
      if (!seen.has(`never ${never}`)) {
        seen.add(`never ${never}`);
        probes.push({ probe: { proto: base.l4.proto, dst: never, ...(base.l4.port !== undefined ? { port: base.l4.port } : {}), uid: base.owner.uid, gid: base.owner.gid }, rule, why: 'around' });
      }
    } catch (e) {
      if (!(e instanceof PoolsExhausted)) throw e;
      probes.length = before;
      skipOnce(notProbed, { rule, what: used.join(', '), why: e.message });
    }
  }

  const l4 = firstL4 ?? { proto: 'tcp' as const, port: 443 };
  for (const x of dns.refused) {
    const name = isWildcard(x.pattern) ? `refused.${x.pattern.slice(2)}` : x.pattern;
    for (const fam of ['ipv4', 'ipv6'] as const)
      try {
        nameProbe(x.origin.name, 'deny', name, fam, l4, NOBODY);
      } catch (e) {
        if (!(e instanceof PoolsExhausted)) throw e;
        skipOnce(notProbed, { rule: x.origin.name, what: x.pattern, why: e.message });
      }
  }

  // DNS over TLS straight to the upstream, from a program: the guard rejects it (port 53 would be redirected).
  for (const u of upstream)
    for (const proto of ['tcp', 'udp'] as const) {
      const probe: Probe = { proto, dst: u.address, port: DOT_PORT, uid: NOBODY.uid, gid: NOBODY.gid };
      probes.push({ probe, rule: GUARD_RULE, why: 'guard' });
    }

  return { probes, notProbed, zone, pools, upstream };
}

/** The rule's own users; a rule for everyone is also tried as an unprivileged user (so not only root resolves). */
function ownersOf(r: IrRule, accounts: Accounts): Owner[] {
  const owners = pickOwners(r, accounts);
  if (!r.users && !r.groups && !owners.some((o) => o.uid === NOBODY.uid)) owners.push(NOBODY);
  return owners;
}

/** Names one, two and three labels under a wildcard's domain (it covers every depth). */
function depths(domain: string): string[] {
  return [`one.${domain}`, `two.one.${domain}`, `three.two.one.${domain}`];
}

/** A name no pattern covers (for the unlisted probes); undefined when the patterns cover every candidate. */
function freeName(patterns: readonly string[]): string | undefined {
  for (const tld of ['example', 'test', 'invalid'])
    for (let i = 0; i < 8; i++) {
      const n = `unlisted.egress-lab${i ? `-${i}` : ''}.${tld}`;
      if (!patterns.some((p) => nameMatches(p, n))) return n;
    }
  return undefined;
}

function skipOnce(out: NotProbed[], n: NotProbed): void {
  if (!out.some((m) => m.rule === n.rule && m.what === n.what && m.why === n.why)) out.push(n);
}

class PoolsExhausted extends Error {
  constructor(fam: Family) {
    super(`no documentation ${fam === 'ipv4' ? 'IPv4' : 'IPv6'} address left for its answers (the names before it took them)`);
  }
}

/**
 * Addresses for the pools, one after another: IPv4 from the documentation
 * prefixes (198.51.100.0/24 first), IPv6 from 2001:db8:d45::/48. Never an
 * address a rule or except names, nor its neighbours (the plain probes try
 * those), nor any of `taken`.
 */
function allocator(ir: Ir, taken: readonly string[]): (fam: Family) => string {
  const busy = new Set(taken.map((t) => parseAddress(t)).filter((a) => a !== undefined).map((a) => `${a.family} ${a.value}`));
  const named = (fam: Family, v: bigint) =>
    ir.rules.some((r) => r.family === fam && [r, ...r.except].some((m) => m.dst && (intervalsContain(m.dst, v) || intervalsContain(m.dst, v - 1n) || intervalsContain(m.dst, v + 1n))));
  const v4 = documentationIntervals('ipv4');
  const order = [v4[1]!, v4[0]!, v4[2]!];
  const next = { ipv4: { i: 0, v: order[0]!.lo + 1n }, ipv6: { i: 0, v: V6_POOL_BASE + 1n } };
  return (fam) => {
    const c = next[fam];
    for (;;) {
      if (fam === 'ipv4') {
        const d = order[c.i];
        if (!d) throw new PoolsExhausted(fam);
        if (c.v >= d.hi) {
          c.i++;
          c.v = (order[c.i]?.lo ?? 0n) + 1n;
          continue;
        }
      } else if (c.v > V6_POOL_BASE + 0xffffffffn) throw new PoolsExhausted(fam);
      const v = c.v++;
      if (busy.has(`${fam} ${v}`) || named(fam, v)) continue;
      busy.add(`${fam} ${v}`);
      return formatAddress(fam, v);
    }
  };
}
