/**
 * Forwarded probes (`forward:`, SPEC §6): which "container" namespaces the
 * lab builds behind each host namespace, with which addresses, and what they
 * try. Pure: world.ts builds the namespaces, lab.ts runs the probes.
 *
 * One container per forward source (at most MAX_SOURCE_CONTAINERS), on an
 * interface of the host namespace named after the source's first interface
 * glob ("br-*" → "br-lab0", "docker0" → "docker0"), with an address in each
 * of the source's families: the first usable address of its networks (the
 * documentation part first), else a documentation address. And one
 * "unlisted" container, on an interface no glob covers and with addresses
 * in no source's networks. A container's address is never an address a
 * probe (the host's, a container's, a name's) goes to: the world routes it
 * back to the container while the container probes.
 *
 * From each container, for each forward rule of a family it has: a rule
 * that governs its source is probed as the host's rules are (its points,
 * and for an allow the addresses just outside, ports ±1 and the protocols it
 * does not name); any other rule, and every host rule, at its first point
 * (from a source it does not govern); and a documentation address no rule
 * names (the forward default, or unlisted). The verdict each is held against
 * is explain's for `--from SRC --in IF`, never this file's.
 */
import type { Ir, IrFwdSource, IrRule } from '../ir/types.js';
import { FAMILIES, formatAddress, intervalsContain, parseAddress, parseDest, type Family, type Interval } from '../policy/address.js';
import { icmpTypeNumber } from '../policy/protocols.js';
import { sourcesOf } from '../sim/forward.js';
import type { Flow } from '../sim/flow.js';
import { ifaceMatches } from '../sim/flow.js';
import type { Probe } from './probe.js';
import { rulePoints, spareAddresses, type L4Point, type NotProbed, type PlannedProbe, type ProbeWhy } from './probes.js';
import { CONTAINER_IFNAME, documentationIntervals, MAX_CONTAINERS, type ContainerSpec } from './world.js';

/** Most sources given a container (the unlisted container comes on top). */
export const MAX_SOURCE_CONTAINERS = MAX_CONTAINERS - 1;
/** The rule name forwarded probes to an address no rule names are listed under: the forward default decides them. */
export const FORWARD_DEFAULT_RULE = 'forward.default';
/** The same from the unlisted container: `forward.unlisted` decides them. */
export const FORWARD_UNLISTED_RULE = 'forward.unlisted';
/** notProbed entries about the containers themselves. */
export const FORWARD_RULE = 'forward';

/** A container the lab builds: the source it stands for (absent = unlisted), its interface in the host namespace, its families. */
export interface ContainerPlan {
  source?: string;
  hostIf: string;
  families: Family[];
}

/** A container as built: ContainerPlan with an address per family it has one in. */
export interface LabContainer extends ContainerSpec {
  source?: string;
}

/** Forwarded probes before their containers have addresses (placeContainers gives them). */
export interface ForwardPlan {
  containers: ContainerPlan[];
  /** Each probe with the index of its container; `probe.from` is not set yet. */
  probes: { container: number; family: Family; planned: PlannedProbe }[];
  notProbed: NotProbed[];
}

/** Which containers to build and what each tries. `ir.forward` must be present. */
export function planForward(ir: Ir): ForwardPlan {
  const fwd = ir.forward;
  if (!fwd) throw new Error('planForward: the policy has no forward scope');
  const notProbed: NotProbed[] = [];
  const skipOnce = (rule: string, what: string, why: string) => {
    if (!notProbed.some((n) => n.rule === rule && n.what === what && n.why === why)) notProbed.push({ rule, what, why });
  };
  const containers = planContainers(fwd.sources, skipOnce);
  const spare = spareAddresses(ir);
  const probes: ForwardPlan['probes'] = [];
  const seen = new Set<string>();
  containers.forEach((c, ci) => {
    for (const fam of c.families) {
      const add = (rule: string, why: ProbeWhy, dst: bigint, l4: L4Point) => {
        if (ir.dns && l4.proto === 'udp' && l4.port === 53) {
          skipOnce(FORWARD_RULE, 'udp/53 from containers', "under dns.proxy the world's port 53 is its DNS server, and containers' DNS through the forwarder is not rehearsed");
          return;
        }
        const probe: Probe = { proto: l4.proto, dst: formatAddress(fam, dst), ...(l4.port !== undefined ? { port: l4.port } : {}), uid: 0, gid: 0 };
        const key = `${ci} ${probe.proto} ${probe.dst} ${probe.port ?? ''}`;
        if (seen.has(key)) return;
        seen.add(key);
        probes.push({ container: ci, family: fam, planned: { probe, rule, why } });
      };
      const elsewhere: ProbeWhy = c.source === undefined ? 'unlisted' : 'around';
      for (const r of fwd.rules.filter((x) => x.family === fam)) {
        const name = r.origin.name;
        const pts = rulePoints(r, spare[fam], (what, why) => skipOnce(name, what, why));
        if (r.via) skipOnce(name, `via ${r.via.join(', ')} from containers`, "forwarded probes leave through the lab's own veth interface, so they do not match via");
        if (r.sets?.some((s) => s.kind === 'dns')) skipOnce(name, 'its names from containers', 'names that follow DNS are rehearsed from the host only');
        if (!pts) continue;
        if (c.source === undefined || !(r.from ?? []).includes(c.source)) {
          add(name, elsewhere, pts.base.dst, pts.base.l4);
          continue;
        }
        const why: ProbeWhy = r.origin.action === 'allow' ? 'allow' : 'deny';
        for (const d of pts.dsts) for (const l of pts.l4s) add(name, why, d, l);
        if (r.origin.action === 'allow') {
          for (const d of pts.aroundDsts) add(name, 'around', d, pts.base.l4);
          for (const l of [...pts.aroundL4s, ...otherProtocols(r, pts.base.l4)]) add(name, 'around', pts.base.dst, l);
        }
        for (const e of pts.excepts) if (e.dst !== undefined && e.l4) add(name, 'except', e.dst, e.l4);
      }
      // The host's own rules do not govern containers: their first point, from here, is the forward scope's to judge.
      for (const r of ir.rules.filter((x) => x.family === fam)) {
        const pts = rulePoints(r, spare[fam], () => {});
        if (pts) add(r.origin.name, elsewhere, pts.base.dst, pts.base.l4);
      }
      add(c.source === undefined ? FORWARD_UNLISTED_RULE : FORWARD_DEFAULT_RULE, elsewhere, spare[fam], { proto: 'tcp', port: 443 });
    }
  });
  return { containers, probes, notProbed };
}

/** An allow's base point in the protocols it does not name (tcp or udp on the same port, ICMP echo). */
function otherProtocols(r: IrRule, base: L4Point): L4Point[] {
  const l4 = r.l4;
  if (!l4) return [];
  const port = base.port ?? 443;
  const out: L4Point[] = [];
  for (const proto of ['tcp', 'udp'] as const) if (!l4.ports.some((p) => p.proto === proto && p.ranges.some(([a, b]) => a <= port && port <= b))) out.push({ proto, port });
  if (l4.icmp !== 'any' && !l4.icmp.includes(icmpTypeNumber('echo-request', r.family)!)) out.push({ proto: 'icmp' });
  return out;
}

function planContainers(sources: readonly IrFwdSource[], skip: (rule: string, what: string, why: string) => void): ContainerPlan[] {
  const globs = sources.flatMap((s) => s.interfaces);
  const used = new Set(['lo']);
  const out: ContainerPlan[] = [];
  sources.forEach((s, i) => {
    if (i >= MAX_SOURCE_CONTAINERS) return skip(FORWARD_RULE, `source ${s.name}`, `at most ${MAX_SOURCE_CONTAINERS} sources are given a container`);
    const hostIf = s.interfaces.length ? nameFromGlobs(s.interfaces, used) : freeName('lab-src', globs, used);
    if (hostIf === undefined) return skip(FORWARD_RULE, `source ${s.name}`, `the lab cannot name an interface after ${s.interfaces.map((g) => `"${g}"`).join(', ')}`);
    used.add(hostIf);
    out.push({ source: s.name, hostIf, families: [...s.families] });
  });
  // Where a source's glob covers every name ("*"), the unlisted container is told apart by its addresses alone.
  const hostIf = freeName('lab-unl', globs, used) ?? freeName('lab-unl', [], used)!;
  out.push({ hostIf, families: [...FAMILIES] });
  return out;
}

/** A name the first usable glob matches: the glob itself, or its prefix and "lab0", "lab1", …; within 15 characters. */
export function nameFromGlobs(globs: readonly string[], used: ReadonlySet<string>): string | undefined {
  for (const g of globs) {
    if (!g.endsWith('*')) {
      if (CONTAINER_IFNAME.test(g) && !used.has(g)) return g;
      continue;
    }
    const prefix = g.slice(0, -1);
    for (let n = 0; n < 100; n++) {
      const name = [`${prefix}lab${n}`, `${prefix}${n}`, n === 0 ? prefix : ''].find((x) => x.length > 0 && x.length <= 15);
      if (name === undefined) break;
      if (CONTAINER_IFNAME.test(name) && !used.has(name)) return name;
    }
  }
  return undefined;
}

/** `base` and a number, matched by none of `globs` and not used. */
function freeName(base: string, globs: readonly string[], used: ReadonlySet<string>): string | undefined {
  for (let n = 0; n < 100; n++) {
    const name = `${base}${n}`;
    if (!used.has(name) && !globs.some((g) => ifaceMatches(g, name))) return name;
  }
  return undefined;
}

/**
 * Give each container its addresses, away from every address in `taken`
 * (probe destinations, pinned names, DNS pools) and each other, and the
 * planned probes their origin. A container that gets no address in a family
 * loses that family's probes (listed as not probed).
 */
export function placeContainers(plan: ForwardPlan, ir: Ir, taken: readonly string[]): { containers: LabContainer[]; probes: PlannedProbe[]; notProbed: NotProbed[] } {
  const sources = ir.forward?.sources ?? [];
  const busy = new Set<string>();
  for (const t of [...taken, ...plan.probes.map((p) => p.planned.probe.dst)]) {
    const a = parseAddress(t);
    if (a) busy.add(key(a.family, a.value));
  }
  const rules = [...ir.rules, ...(ir.forward?.rules ?? [])];
  const named = (fam: Family, v: bigint) => rules.some((r) => r.family === fam && [r, ...r.except].some((m) => m.dst && intervalsContain(m.dst, v)));
  const notProbed = [...plan.notProbed];
  const containers: LabContainer[] = plan.containers.map((c) => {
    const addresses: ContainerSpec['addresses'] = {};
    for (const fam of c.families) {
      const member = (v: bigint) => {
        const got = sourcesOf(sources, { family: fam, dst: 0n, proto: 'tcp', forwarded: { in: c.hostIf, src: v } } satisfies Flow);
        return c.source === undefined ? got.length === 0 : got.includes(c.source);
      };
      const own = c.source !== undefined ? sources.find((s) => s.name === c.source)?.networks?.[fam] : undefined;
      // Its networks' documentation part, then the rest; a source without networks (and the unlisted container): documentation addresses no rule names, then any.
      const passes: { ranges: Interval[]; avoid?: (v: bigint) => boolean }[] = own
        ? [{ ranges: intersect(own, documentationIntervals(fam)) }, { ranges: own }]
        : [{ ranges: documentationIntervals(fam), avoid: (v) => named(fam, v) || sources.some((s) => s.networks && intervalsContain(s.networks[fam], v)) }, { ranges: documentationIntervals(fam) }];
      const v = firstUsable(fam, passes, (x) => !busy.has(key(fam, x)) && member(x));
      if (v === undefined) {
        notProbed.push({ rule: FORWARD_RULE, what: `${label(c)} over ${fam === 'ipv4' ? 'IPv4' : 'IPv6'}`, why: 'no address left for its container' });
        continue;
      }
      busy.add(key(fam, v));
      addresses[fam] = formatAddress(fam, v);
    }
    return { ...(c.source !== undefined ? { source: c.source } : {}), hostIf: c.hostIf, addresses };
  });
  const probes = plan.probes.flatMap(({ container, family, planned }) => {
    const c = containers[container]!;
    const src = c.addresses[family];
    if (src === undefined) return [];
    return [{ ...planned, probe: { ...planned.probe, from: { ...(c.source !== undefined ? { source: c.source } : {}), src, in: c.hostIf } } }];
  });
  return { containers: containers.filter((c) => Object.keys(c.addresses).length > 0), probes, notProbed };
}

/** How a container is named in reports: its source, or "the unlisted container". */
export function label(c: { source?: string }): string {
  return c.source !== undefined ? `source ${c.source}` : 'the unlisted container';
}

function key(fam: Family, v: bigint): string {
  return `${fam} ${v}`;
}

function intersect(xs: readonly Interval[], ys: readonly Interval[]): Interval[] {
  const out: Interval[] = [];
  for (const x of xs) for (const y of ys) if (x.lo <= y.hi && y.lo <= x.hi) out.push({ lo: x.lo > y.lo ? x.lo : y.lo, hi: x.hi < y.hi ? x.hi : y.hi });
  return out;
}

/** Addresses a container never gets: special-purpose ones, and the lab's own links (198.18.0.0/15, 2001:2::/48). */
const UNUSABLE: Record<Family, Interval[]> = {
  ipv4: ['0.0.0.0/8', '127.0.0.0/8', '169.254.0.0/16', '198.18.0.0/15', '224.0.0.0/3'].map(range),
  ipv6: ['::/8', '2001:2::/48', 'fe80::/10', 'ff00::/8'].map(range),
};

function range(cidr: string): Interval {
  const d = parseDest(cidr);
  if (d.kind !== 'addr') throw new Error(`bad built-in range ${cidr}`);
  return { lo: d.lo, hi: d.hi };
}

/** Most candidates tried per range and pass (an address is almost always found within the first few). */
const TRIES = 4096;

/** The first usable host address of the first pass that has one (a network's first address is skipped when it has more than two). */
function firstUsable(fam: Family, passes: { ranges: Interval[]; avoid?: (v: bigint) => boolean }[], ok: (v: bigint) => boolean): bigint | undefined {
  for (const p of passes)
    for (const r of p.ranges) {
      let v = r.hi - r.lo >= 2n ? r.lo + 1n : r.lo;
      for (let n = 0; v <= r.hi && n < TRIES; n++) {
        const bad = UNUSABLE[fam].find((u) => u.lo <= v && v <= u.hi);
        if (bad) {
          v = bad.hi + 1n;
          continue;
        }
        if (!p.avoid?.(v) && ok(v)) return v;
        v++;
      }
    }
  return undefined;
}
