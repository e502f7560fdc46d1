/**
 * ResolvedPolicy → Ir. Pure and total: every diagnostic was found earlier.
 * A rule half that can match nothing in a family (no destinations of that
 * family, or only ICMP types that family lacks) is left out of that family.
 */
import { FAMILIES, mergeIntervals, type Family } from '../policy/address.js';
import { icmpTypeNumber } from '../policy/protocols.js';
import { HOST_SOURCE, type ForwardSource, type OwnerRef, type PortRange } from '../policy/types.js';
import type { ResolvedDest, ResolvedPolicy, ResolvedRule, ResolvedSelectors } from '../resolve/types.js';
import { DNS_FORWARDER_GROUP, DNS_LISTEN } from '../resolve/dns.js';
import type { Ir, IrDns, IrFwdSource, IrInterval, IrL4, IrMatch, IrOwner, IrPorts, IrRule, IrSet, IrSource } from './types.js';

export function lowerPolicy(p: ResolvedPolicy): Ir {
  const rules: IrRule[] = [];
  const forwardRules: IrRule[] = [];
  const sources = p.forward ? p.forward.sources.map(lowerSource) : [];
  const byName = (a: ResolvedRule, b: ResolvedRule) => (a.ref.name < b.ref.name ? -1 : a.ref.name > b.ref.name ? 1 : 0);
  for (const r of [...[...p.deny].sort(byName), ...[...p.allow].sort(byName)]) {
    const twins = FAMILIES.map((fam) => lowerRule(r, fam)).filter((x): x is NonNullable<typeof x> => x !== undefined);
    // A rule's hostname set is the same in both families (see IrSet). A rule that follows DNS exists in both
    // families whatever its names resolve to now, so its hostname sets name every exact name, resolved or not.
    const ruleHosts = follows(r) ? r.hosts ?? [] : [...new Set(twins.flatMap((t) => t.rule.hosts ?? []))].sort();
    const from = new Set(r.from.map((f) => f.name));
    for (const { rule, exceptFrom } of twins) {
      lowerSets(rule, rule, r.to, ruleHosts, follows(r) ? r.dnsNames : undefined);
      rule.except.forEach((e, i) => lowerSets(rule, e, exceptFrom[i]!.to, e.hosts ?? [], undefined));
      if (from.has(HOST_SOURCE)) rules.push(rule);
      // The forward twin: the same match (and the same sets) for the rule's sources that have traffic in this family.
      const fwd = sources.filter((s) => from.has(s.name) && s.families.includes(rule.family)).map((s) => s.name);
      if (fwd.length) forwardRules.push({ ...rule, from: fwd });
    }
  }
  const ir: Ir = {
    mode: p.mode,
    default: p.default,
    denyVerdict: p.denyVerdict,
    log: p.log,
    builtins: p.builtins,
    rules,
    hosts: p.hosts,
  };
  if (p.dns.proxy) ir.dns = lowerDns(p);
  if (p.forward)
    ir.forward = {
      sources,
      default: p.forward.default,
      denyVerdict: p.forward.denyVerdict,
      unlisted: p.forward.unlisted,
      rules: forwardRules,
      span: p.forward.spans.key,
    };
  return ir;
}

function lowerSource(s: ForwardSource): IrFwdSource {
  const out: IrFwdSource = { name: s.name, interfaces: [...new Set(s.interfaces.map((i) => i.name))].sort(), families: [...FAMILIES], span: s.span };
  if (s.networks) {
    const networks = { ipv4: mergeIntervals(s.networks.filter((n) => n.family === 'ipv4')), ipv6: mergeIntervals(s.networks.filter((n) => n.family === 'ipv6')) };
    out.networks = networks;
    // Networks narrow the families they name; with interfaces, a family they leave out is matched by interface alone
    // (a Docker bridge's IPv6 is governed even when only its IPv4 network is written). Without interfaces, the
    // source is its addresses.
    if (!out.interfaces.length) out.families = FAMILIES.filter((f) => networks[f].length > 0);
  }
  return out;
}

/** Whether a rule's names fill a dynamic set: allow rules under `dns.proxy` (deny rules' names are refused instead). */
function follows(r: ResolvedRule): r is ResolvedRule & { dnsNames: string[] } {
  return r.ref.action === 'allow' && (r.dnsNames?.length ?? 0) > 0;
}

function lowerDns(p: ResolvedPolicy): IrDns {
  const byName = (a: ResolvedRule, b: ResolvedRule) => (a.ref.name < b.ref.name ? -1 : a.ref.name > b.ref.name ? 1 : 0);
  const refused = [...p.deny].sort(byName).flatMap((r) => (r.dnsNames ?? []).map((pattern) => ({ pattern, origin: r.ref })));
  const fwd = p.dnsForwarder ?? { group: DNS_FORWARDER_GROUP };
  return {
    upstream: (p.dns.upstream ?? []).map((u) => ({ address: u.address, port: u.port })),
    graceSec: p.dns.graceSec,
    minLifetimeSec: p.dns.minLifetimeSec,
    listen: DNS_LISTEN.map((l) => ({ ...l })),
    forwarder: { name: fwd.group, ...(fwd.gid !== undefined ? { id: fwd.gid } : {}) },
    refused,
    span: p.dns.spans.proxy ?? p.dns.spans.key!,
  };
}

/** One family's twin of a rule, with the policy alternative each IR `except` came from (empty ones are left out). */
function lowerRule(r: ResolvedRule, fam: Family): { rule: IrRule; exceptFrom: ResolvedSelectors[] } | undefined {
  const sources: IrSource[] = [];
  const m = lowerMatch(r, fam, sources, follows(r));
  if (!m) return undefined;
  const except: IrMatch[] = [];
  const exceptFrom: ResolvedSelectors[] = [];
  for (const e of r.except) {
    const x = lowerMatch(e, fam, sources, false);
    if (x) {
      except.push(x);
      exceptFrom.push(e);
    }
  }
  const keySpans: IrRule['keySpans'] = { ...r.keySpans, ...(r.exceptSpan ? { except: r.exceptSpan } : {}), ...(r.fromSpan ? { from: r.fromSpan } : {}) };
  const out: IrRule = { origin: r.ref, keySpans, family: fam, ...m, except, sources };
  if (r.reason !== undefined) out.reason = r.reason;
  if (r.expires !== undefined) {
    const [y, mo, d] = r.expires.split('-').map(Number);
    out.untilSec = Date.UTC(y!, mo! - 1, d! + 1) / 1000;
  }
  return { rule: out, exceptFrom };
}

/**
 * undefined = matches nothing in this family. `dynamic`: the forwarder may
 * add destinations, so none now is not nothing. Hostnames are dynamic too:
 * a name without an address in this family now may gain one, and `refresh`
 * fills the family's hostname set in place (it needs the set, and the rule
 * that uses it, to exist already — an empty set matches nothing).
 */
function lowerMatch(s: ResolvedSelectors, fam: Family, sources: IrSource[], dynamic: boolean): IrMatch | undefined {
  if (!s.families.includes(fam)) return undefined;
  const m: IrMatch = {};
  if (s.to) {
    const dst = lowerDest(s.to.filter((d) => d.family === fam), sources);
    if (dst.length === 0 && !dynamic && !s.hosts?.length) return undefined;
    m.dst = dst;
    const hosts = [...new Set(s.to.filter((d) => d.family === fam && d.host).map((d) => d.host!))].sort();
    if (hosts.length) m.hosts = hosts;
  }
  if (s.ports || s.icmp) {
    const l4 = lowerL4(s.ports ?? [], s.icmp ?? [], fam);
    if (!l4) return undefined;
    m.l4 = l4;
  }
  if (s.users) m.users = lowerOwners(s.users);
  if (s.groups) m.groups = lowerOwners(s.groups);
  if (s.via) m.via = [...new Set(s.via.map((v) => v.name))].sort();
  return m;
}

/** Name a match's destinations as sets: the written addresses, the hostnames' current addresses, then what DNS answers. */
function lowerSets(r: IrRule, m: IrMatch, to: ResolvedDest[] | undefined, hosts: string[], patterns: string[] | undefined): void {
  if (!m.dst || !to) return;
  const fam = r.family;
  const sets: IrSet[] = [];
  const literal = mergeIntervals(to.filter((d) => d.family === fam && !d.host));
  if (literal.length) sets.push({ kind: 'addresses', family: fam, elements: literal, hosts: [], origin: r.origin });
  if (hosts.length) {
    const want = new Set(hosts);
    const vals = [...new Set(to.filter((d) => d.family === fam && d.host !== undefined && want.has(d.host)).map((d) => d.lo))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    sets.push({ kind: 'hostnames', family: fam, elements: vals.map((v) => ({ lo: v, hi: v })), hosts, origin: r.origin });
  }
  if (patterns) sets.push({ kind: 'dns', family: fam, elements: [], hosts: [], patterns, origin: r.origin });
  m.sets = sets;
}

export function lowerDest(ds: ResolvedDest[], sources: IrSource[]): IrInterval[] {
  // Sources are shared by a rule's twins and excepts; key them so lowering stays linear.
  const key = (file: string, start: number, host: string | undefined) => `${file}\0${start}\0${host ?? ''}`;
  const known = new Map<string, number>(sources.map((s, i) => [key(s.span.file, s.span.start, s.host), i]));
  const index = (d: ResolvedDest): number => {
    const k = key(d.span.file, d.span.start, d.host);
    const i = known.get(k);
    if (i !== undefined) return i;
    const src: IrSource = { text: d.text, span: d.span };
    if (d.host) src.host = d.host;
    if (d.sets) src.sets = d.sets;
    sources.push(src);
    known.set(k, sources.length - 1);
    return sources.length - 1;
  };
  const items = ds.map((d) => ({ lo: d.lo, hi: d.hi, src: index(d) })).sort((a, b) => (a.lo < b.lo ? -1 : a.lo > b.lo ? 1 : a.src - b.src));
  const out: IrInterval[] = [];
  // The sources of the interval being merged, as a set: a million adjacent /32s merge into one interval
  // (`includes` on its list made that quadratic: 361 s).
  let seen = new Set<number>();
  for (const x of items) {
    const last = out[out.length - 1];
    if (last && x.lo <= last.hi + 1n) {
      if (x.hi > last.hi) last.hi = x.hi;
      if (!seen.has(x.src)) {
        seen.add(x.src);
        last.src.push(x.src);
      }
    } else {
      out.push({ lo: x.lo, hi: x.hi, src: [x.src] });
      seen = new Set([x.src]);
    }
  }
  for (const x of out) x.src.sort((a, b) => a - b);
  return out;
}

function lowerL4(ports: PortRange[], icmp: { name: string }[], fam: Family): IrL4 | undefined {
  const byProto = new Map<string, [number, number][]>();
  for (const p of ports) {
    const list = byProto.get(p.proto) ?? [];
    list.push([p.lo === 0 ? 0 : p.lo, p.hi]);
    byProto.set(p.proto, list);
  }
  const merged: IrPorts[] = [...byProto.entries()]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([proto, rs]) => ({ proto: proto as IrPorts['proto'], ranges: mergeRanges(rs) }));
  let types: number[] | 'any' = [];
  if (icmp.some((i) => i.name === 'any')) types = 'any';
  else types = [...new Set(icmp.map((i) => icmpTypeNumber(i.name, fam)).filter((t): t is number => t !== undefined))].sort((a, b) => a - b);
  if (merged.length === 0 && types !== 'any' && types.length === 0) return undefined;
  return { ports: merged, icmp: types };
}

export function mergeRanges(rs: [number, number][]): [number, number][] {
  const s = [...rs].sort((a, b) => a[0] - b[0]);
  const out: [number, number][] = [];
  for (const [lo, hi] of s) {
    const last = out[out.length - 1];
    if (last && lo <= last[1] + 1) last[1] = Math.max(last[1], hi);
    else out.push([lo, hi]);
  }
  // A bare protocol is 0-65535; "1-65535" written out means the same to an operator.
  return out;
}

function lowerOwners(os: OwnerRef[]): IrOwner[] {
  const seen = new Map<string, IrOwner>();
  for (const o of os) {
    const v: IrOwner = {};
    if (o.id !== undefined) v.id = o.id;
    if (o.name !== undefined) v.name = o.name;
    seen.set(o.id !== undefined ? `#${o.id}` : `@${o.name}`, v);
  }
  return [...seen.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, v]) => v);
}
