/**
 * Learn: from what audit mode (or an enforcing policy) logged as denied, the
 * allow rules that would admit it, grouped the way an operator writes them.
 *
 * 1. Every distinct flow seen (destination, protocol, port or ICMP type, uid,
 *    gid) is run through the policy's indexed evaluator. Only flows the
 *    policy sends to its `default` can be learned: a flow a deny rule catches
 *    stays denied whatever is allowed (SPEC §2), and one already accepted
 *    needs nothing.
 * 2. Destinations are named as the policy names them: an address that one of
 *    the policy's hostnames resolved to is written as that hostname. With
 *    `dns.proxy: true` and the forwarder's log, an address that had just been
 *    given out in an answer for name N (within that answer's lifetime; to the
 *    same user when there is such an answer) is written as N — addresses
 *    rotate, the name stays (observe/names.ts `NameIndex`).
 * 3. Grouping, each step merging what the previous one left:
 *    (destination, user) → its ports; (user, ports) → its destinations,
 *    where `collapseAt` or more addresses of one /24 (IPv4) or /64 (IPv6)
 *    become that prefix, and `WILDCARD_AT` or more names under one domain
 *    become its wildcard `*.domain` (at least two labels after `*.`; never a
 *    `co.uk`-like domain); (destinations, ports) → its users. A flow logged
 *    without a uid gives a rule without `user:`.
 * 4. Each rule carries its counts and first/last seen as YAML comments, and a
 *    `reason` that says it was learned, so lint stays quiet and a reviewer
 *    knows where it came from.
 * 5. Before anything is shown as ready or written, the policy with the
 *    learned rules merged in is loaded and must accept every flow they were
 *    learned from (`verifyLearned`); a flow written as a name is decided as
 *    it would be once the forwarder answered that name with its address.
 * 6. Forwarded flows (a container's or VM's, SPEC §6) are decided as
 *    forwarded flows: one that belongs to forward sources and goes to
 *    `forward.default` gives a rule `from: [those sources]`, grouped like the
 *    host's with the sources in place of the user (never `user`/`group`: a
 *    forwarded packet has no owner). One from no source (decided by
 *    `forward.unlisted`) cannot be admitted by any rule: it is reported per
 *    input interface, with the source to add, in `unlisted`.
 */
import { Document, Scalar, type YAMLMap, type YAMLSeq } from 'yaml';
import { hasErrors } from '../diag/diagnostic.js';
import { loadPolicyText, type Loaded, type LoadOptions } from '../index.js';
import type { Ir } from '../ir/types.js';
import { formatAddress, parseAddress, type Family } from '../policy/address.js';
import { parseName } from '../policy/dns-name.js';
import { icmpTypeName } from '../policy/protocols.js';
import type { Accounts } from '../resolve/resolver.js';
import type { Decision } from '../sim/flow.js';
import { nameOutcome, withAnswer } from '../sim/dns.js';
import { indexedEvaluator } from '../sim/indexed.js';
import type { LogEvent } from '../logs/event.js';
import { siblingWildcards, WILDCARD_AT, type NameIndex } from './names.js';
import { accountNames, flowKey, FlowMaker, hostsByAddress, Replayer } from './replay.js';

export const COLLAPSE_AT = 4;

/** One distinct flow seen in the logs. */
export interface SeenFlow {
  family: Family;
  dst: string;
  proto: LogEvent['proto'];
  protoNum: number;
  port?: number;
  icmpType?: number;
  uid?: number;
  gid?: number;
  connections: number;
  first?: number;
  last?: number;
  decision: Decision;
  /** Names the forwarder had just answered with `dst` when connections were made: name → connections (and whether the answer went to this flow's uid). */
  answered?: Map<string, { connections: number; sameUser: boolean }>;
  /** The name learn wrote for `dst` (set by learnRules); verification decides the flow as if the forwarder had answered it with `dst`. */
  name?: string;
  /** A forwarded flow: its input interface and source address (canonical). */
  forwarded?: ForwardedFrom;
}

/** Where a forwarded flow came in: its input interface and source address (canonical). */
export interface ForwardedFrom {
  in: string;
  src: string;
}

export interface LearnedRule {
  name: string;
  reason: string;
  to: string[];
  ports: string[];
  icmp: string[];
  /** Names (or uids where the host has no name); empty = any user. */
  users: (string | number)[];
  /** Forward sources the rule governs (`from`); empty = the host (from omitted). */
  from: string[];
  connections: number;
  first?: number;
  last?: number;
  /** Per destination (as written in `to`) connections, most first. */
  perDestination: { to: string; connections: number }[];
  /** Prefixes that replaced several addresses, with the addresses seen. */
  collapsed: { prefix: string; seen: string[] }[];
  /** Destinations written as the name their addresses were answered for (forwarder log), with the addresses seen. */
  names: { name: string; addresses: string[]; sameUser: boolean }[];
  /** Wildcards that replaced several such names, with the names. */
  wildcards: { pattern: string; seen: string[] }[];
  /** Addresses answered for a name that learn could not write as the name, and why. */
  unnamed: { address: string; name: string; why: string }[];
  flows: SeenFlow[];
}

export interface NotLearned {
  flow: SeenFlow;
  /** `port-0`: a packet to port 0 (the kernel logs it; a policy's ports are 1-65535, so no rule can admit it). */
  why: 'denied-by-rule' | 'protocol' | 'icmp-type' | 'port-0';
  /** The deny rules that catch it. */
  rules?: string[];
}

/**
 * Forwarded flows from no forward source, per input interface: no rule can
 * admit them (rules govern sources); adding `source` under `forward.sources`
 * makes them a source's, and learn then proposes rules `from: [<its name>]`.
 */
export interface UnlistedSource {
  interface: string;
  /** Source addresses seen, most connections first. */
  addresses: string[];
  connections: number;
  /** How the policy decides them now: `forward.unlisted` (warn, deny, accept), or "none" without a forward scope. */
  unlisted: 'warn' | 'deny' | 'accept' | 'none';
  /** The source to add: a free name and the interface. */
  source: { name: string; interfaces: string[] };
  /** The verdict for what no rule admits once that source is added: `forward.default` (the policy's default without a forward scope). */
  default: Ir['default'];
  flows: SeenFlow[];
}

export interface Learned {
  rules: LearnedRule[];
  notLearned: NotLearned[];
  /** Forwarded flows from no source, per input interface (empty when there were none). */
  unlisted: UnlistedSource[];
  /** Connections the policy already accepts (it changed since the logs were written). */
  alreadyAllowed: number;
  /** Distinct flows seen. */
  flows: number;
}

/** Collects distinct flows from events (after dedupe) and decides each once. */
export class FlowCollector {
  private readonly flows = new Map<string, SeenFlow>();
  private readonly replayer: Replayer;

  /** `names`: the forwarder log's answers, to tell which name each denied address had been answered for. */
  constructor(
    ir: Ir,
    accounts?: Accounts,
    private readonly names?: NameIndex,
  ) {
    // Answer-aware: a flow to an address the forwarder had answered for a name an allow rule already names is already allowed.
    this.replayer = new Replayer(ir, accounts, names);
  }

  add(e: LogEvent, isNew: boolean): void {
    if (e.verdict === 'allowed') return;
    // The output interface is not learned (rules are written without `via`); a forwarded flow never has an owner.
    const fwd = e.in !== undefined;
    const ev = (fwd ? { ...e, out: undefined, uid: undefined, gid: undefined } : { ...e, out: undefined }) as LogEvent;
    const k = flowKey(ev);
    let f = this.flows.get(k);
    if (!f) {
      const decision = this.replayer.decide(ev);
      if (!decision) return;
      f = { family: e.family, dst: e.dst, proto: e.proto, protoNum: e.protoNum, connections: 0, decision };
      if (e.proto === 'icmp') f.icmpType = e.icmpType!;
      else if (e.proto !== 'other' && e.dpt !== undefined) f.port = e.dpt;
      if (ev.uid !== undefined) f.uid = ev.uid;
      if (ev.gid !== undefined) f.gid = ev.gid;
      if (fwd) {
        const a = parseAddress(e.src);
        f.forwarded = { in: e.in!, src: a ? formatAddress(a.family, a.value) : e.src };
      }
      this.flows.set(k, f);
    }
    if (isNew) f.connections++;
    if (isNew && this.names && e.time !== undefined) {
      const a = this.names.lookup(e.dst, e.time, e.uid);
      if (a) {
        f.answered ??= new Map();
        const had = f.answered.get(a.name);
        f.answered.set(a.name, { connections: (had?.connections ?? 0) + 1, sameUser: (had?.sameUser ?? false) || a.sameUser });
      }
    }
    if (e.time !== undefined) {
      if (f.first === undefined || e.time < f.first) f.first = e.time;
      if (f.last === undefined || e.time > f.last) f.last = e.time;
    }
  }

  seen(): SeenFlow[] {
    return [...this.flows.values()];
  }
}

interface Atom {
  dest: string;
  port: string;
  user: string | number | '*';
  /** The forward sources, joined by ","; "" = the host. */
  from: string;
  flows: SeenFlow[];
}

const ANY = '*';

function portSpec(f: SeenFlow): string | undefined {
  if (f.proto === 'icmp') {
    const name = icmpTypeName(f.family, f.icmpType!);
    return /^\d+$/.test(name) ? undefined : `icmp:${name}`;
  }
  if (f.proto === 'other' || f.port === undefined || f.port === 0) return undefined;
  return `${f.proto}/${f.port}`;
}

function sum(fs: readonly SeenFlow[]): { connections: number; first?: number; last?: number } {
  let connections = 0;
  let first: number | undefined;
  let last: number | undefined;
  for (const f of fs) {
    connections += f.connections;
    if (f.first !== undefined && (first === undefined || f.first < first)) first = f.first;
    if (f.last !== undefined && (last === undefined || f.last > last)) last = f.last;
  }
  return { connections, ...(first !== undefined ? { first } : {}), ...(last !== undefined ? { last } : {}) };
}

function groupBy<T>(xs: readonly T[], key: (x: T) => string): T[][] {
  const m = new Map<string, T[]>();
  for (const x of xs) {
    const k = key(x);
    const g = m.get(k);
    if (g) g.push(x);
    else m.set(k, [x]);
  }
  return [...m.values()];
}

const portOrder = (a: string, b: string) => {
  const [pa, na] = a.split('/');
  const [pb, nb] = b.split('/');
  return pa === pb ? Number(na) - Number(nb) : a.localeCompare(b);
};

/** The /24 or /64 an address is in, as CIDR text; undefined for hostnames. */
function prefixOf(dest: string): string | undefined {
  const a = parseAddress(dest);
  if (!a) return undefined;
  const bits = a.family === 'ipv4' ? 24n : 64n;
  const width = a.family === 'ipv4' ? 32n : 128n;
  const base = (a.value >> (width - bits)) << (width - bits);
  return `${formatAddress(a.family, base)}/${bits}`;
}

function slug(s: string): string {
  return s
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
}

export interface LearnOptions {
  ir: Ir;
  accounts?: Accounts;
  /** Names already taken in the policy. */
  taken: Iterable<string>;
  collapseAt?: number;
  /** Names under one domain that become its wildcard (default WILDCARD_AT). */
  wildcardAt?: number;
}

/** The name a flow's connections were most often answered for: same user first, then most connections, then alphabetical. */
function topName(f: SeenFlow): string | undefined {
  let best: [string, { connections: number; sameUser: boolean }] | undefined;
  for (const x of f.answered ?? []) {
    if (!best || Number(x[1].sameUser) - Number(best[1].sameUser) > 0 || (x[1].sameUser === best[1].sameUser && (x[1].connections > best[1].connections || (x[1].connections === best[1].connections && x[0] < best[0])))) best = x;
  }
  return best?.[0];
}

/** Why `name` cannot stand for an address in a learned rule of this policy (undefined: it can). */
function nameProblem(ir: Ir, name: string): string | undefined {
  if (!ir.dns) return 'the policy does not set dns.proxy: true, so a name would be resolved once, not follow the answers';
  if (parseName(name).kind !== 'host') return 'not a name a policy can hold';
  if (nameOutcome(ir, name)?.answer === 'refused') return 'a deny rule names it (the forwarder refuses it)';
  return undefined;
}

export function learnRules(flows: readonly SeenFlow[], opts: LearnOptions): Learned {
  const hosts = hostsByAddress(opts.ir);
  const userNames = new Map<number, string>();
  for (const [name, id] of opts.accounts?.users ?? []) if (!userNames.has(id)) userNames.set(id, name);
  const out: Learned = { rules: [], notLearned: [], unlisted: [], alreadyAllowed: 0, flows: flows.length };
  const atoms = new Map<string, Atom>();
  const unlisted: SeenFlow[] = [];
  for (const f of flows) {
    const d = f.decision;
    if (d.step === 'unlisted') {
      unlisted.push(f);
      continue;
    }
    if (d.verdict === 'accept') {
      out.alreadyAllowed += f.connections;
      continue;
    }
    if (d.step === 'deny') {
      out.notLearned.push({ flow: f, why: 'denied-by-rule', rules: d.rules.map((r) => r.name) });
      continue;
    }
    const port = portSpec(f);
    if (!port) {
      out.notLearned.push({ flow: f, why: f.proto === 'icmp' ? 'icmp-type' : f.port === 0 ? 'port-0' : 'protocol' });
      continue;
    }
    const asked = hosts.has(f.dst) ? undefined : topName(f);
    if (asked !== undefined && !nameProblem(opts.ir, asked)) f.name = asked;
    const dest = hosts.get(f.dst) ?? f.name ?? f.dst;
    const user = f.uid === undefined ? ANY : userNames.get(f.uid) ?? f.uid;
    const from = f.forwarded ? [...(d.sources ?? [])].sort().join(',') : '';
    const k = `${dest}\t${port}\t${user}\t${from}`;
    const a = atoms.get(k);
    if (a) a.flows.push(f);
    else atoms.set(k, { dest, port, user, from, flows: [f] });
  }

  // (destination, user, sources) → ports
  const byDestUser = groupBy([...atoms.values()], (a) => `${a.dest}\t${a.user}\t${a.from}`).map((g) => ({
    dest: g[0]!.dest,
    user: g[0]!.user,
    from: g[0]!.from,
    ports: [...new Set(g.map((a) => a.port))].sort(portOrder),
    flows: g.flatMap((a) => a.flows),
  }));
  // (user, ports) → destinations, collapsing crowded prefixes
  const collapseAt = opts.collapseAt ?? COLLAPSE_AT;
  const byUserPorts = groupBy(byDestUser, (x) => `${x.user}\t${x.from}\t${x.ports.join(',')}`).map((g) => {
    const dests = new Map<string, SeenFlow[]>();
    const collapsed: { prefix: string; seen: string[] }[] = [];
    for (const grp of groupBy(g, (x) => prefixOf(x.dest) ?? `host:${x.dest}`)) {
      const prefix = prefixOf(grp[0]!.dest);
      if (prefix && grp.length >= collapseAt) {
        dests.set(prefix, grp.flatMap((x) => x.flows));
        collapsed.push({ prefix, seen: grp.map((x) => x.dest).sort() });
      } else for (const x of grp) dests.set(x.dest, x.flows);
    }
    // Names from the forwarder's answers, crowded under one domain → its wildcard (only they: the policy's own hostnames stay as written).
    const wildcards: { pattern: string; seen: string[] }[] = [];
    if (opts.ir.dns) {
      const asked = [...dests].filter(([d, fs]) => fs.every((f) => f.name === d)).map(([d]) => d);
      for (const [pattern, seen] of siblingWildcards(asked, opts.wildcardAt ?? WILDCARD_AT)) {
        dests.set(pattern, seen.flatMap((n) => dests.get(n)!));
        for (const n of seen) dests.delete(n);
        wildcards.push({ pattern, seen });
      }
    }
    return { user: g[0]!.user, from: g[0]!.from, ports: g[0]!.ports, dests, collapsed, wildcards };
  });
  // (destinations, ports, sources) → users
  const rules = groupBy(byUserPorts, (x) => `${[...x.dests.keys()].sort().join(',')}\t${x.ports.join(',')}\t${x.from}`).map((g) => {
    const users = g.map((x) => x.user);
    const anyUser = users.includes(ANY);
    const dests = new Map<string, SeenFlow[]>();
    for (const x of g) for (const [d, fs] of x.dests) dests.set(d, [...(dests.get(d) ?? []), ...fs]);
    const flowsOf = [...dests.values()].flat();
    const ports = g[0]!.ports;
    return {
      to: [...dests.keys()],
      perDestination: [...dests].map(([to, fs]) => ({ to, connections: sum(fs).connections })).sort((a, b) => b.connections - a.connections || a.to.localeCompare(b.to)),
      ports: ports.filter((p) => !p.startsWith('icmp:')),
      icmp: ports.filter((p) => p.startsWith('icmp:')).map((p) => p.slice(5)),
      users: anyUser ? [] : [...new Set(users as (string | number)[])].sort((a, b) => String(a).localeCompare(String(b))),
      from: g[0]!.from ? g[0]!.from.split(',') : [],
      collapsed: g.flatMap((x) => x.collapsed),
      wildcards: g.flatMap((x) => x.wildcards),
      ...namesOf(opts.ir, flowsOf),
      flows: flowsOf,
      ...sum(flowsOf),
    };
  });
  rules.sort((a, b) => b.connections - a.connections || a.to.join().localeCompare(b.to.join()));
  const taken = new Set(opts.taken);
  for (const r of rules) {
    const name = ruleName(r.to, [...r.ports, ...r.icmp], r.users.length ? r.users : r.from, taken);
    taken.add(name);
    out.rules.push({ name, reason: `learned from logs (${r.connections} connection${r.connections === 1 ? '' : 's'} denied); review before enforcing`, ...r });
  }
  out.unlisted = unlistedSources(opts.ir, unlisted);
  return out;
}

/** Forwarded flows from no source, per input interface, each with a free source name to add for it. */
function unlistedSources(ir: Ir, flows: readonly SeenFlow[]): UnlistedSource[] {
  const taken = new Set((ir.forward?.sources ?? []).map((s) => s.name));
  const out = groupBy(flows, (f) => f.forwarded!.in).map((fs): UnlistedSource => {
    const perAddress = new Map<string, number>();
    for (const f of fs) perAddress.set(f.forwarded!.src, (perAddress.get(f.forwarded!.src) ?? 0) + f.connections);
    const iface = fs[0]!.forwarded!.in;
    return {
      interface: iface,
      addresses: [...perAddress].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map(([a]) => a),
      connections: sum(fs).connections,
      unlisted: ir.forward?.unlisted ?? 'none',
      source: { name: '', interfaces: [iface] },
      default: ir.forward?.default ?? ir.default,
      flows: [...fs].sort((a, b) => b.connections - a.connections || (a.dst < b.dst ? -1 : a.dst > b.dst ? 1 : 0)),
    };
  });
  out.sort((a, b) => b.connections - a.connections || (a.interface < b.interface ? -1 : 1));
  for (const u of out) {
    const base = (slug(u.interface) || 'workloads').slice(0, 32);
    let name = base;
    for (let i = 2; taken.has(name) || name === 'host'; i++) name = `${base.slice(0, 32 - String(i).length - 1)}-${i}`;
    taken.add(name);
    u.source.name = name;
  }
  return out;
}

/** What a rule's flows say about names: those written for addresses, and answers that could not be. */
function namesOf(ir: Ir, flows: readonly SeenFlow[]): Pick<LearnedRule, 'names' | 'unnamed'> {
  const names = new Map<string, { addresses: Set<string>; sameUser: boolean }>();
  const unnamed = new Map<string, { address: string; name: string; why: string }>();
  for (const f of flows) {
    if (f.name !== undefined) {
      const n = names.get(f.name) ?? { addresses: new Set<string>(), sameUser: false };
      n.addresses.add(f.dst);
      n.sameUser ||= f.answered?.get(f.name)?.sameUser ?? false;
      names.set(f.name, n);
      continue;
    }
    const asked = topName(f);
    const why = asked === undefined ? undefined : nameProblem(ir, asked);
    if (asked !== undefined && why) unnamed.set(f.dst, { address: f.dst, name: asked, why });
  }
  return {
    names: [...names].map(([name, n]) => ({ name, addresses: [...n.addresses].sort(), sameUser: n.sameUser })).sort((a, b) => (a.name < b.name ? -1 : 1)),
    unnamed: [...unnamed.values()].sort((a, b) => (a.address < b.address ? -1 : 1)),
  };
}

/** `learned-<destination or port>[-<user or source>]`, within 32 characters, unique. */
function ruleName(to: string[], ports: string[], by: (string | number)[], taken: Set<string>): string {
  const what = to.length === 1 ? slug(to[0]!.replace(/\/\d+$/, '')) : slug(ports[0]!.replace(/^icmp:/, '').replace('/', ''));
  const who = by.length === 1 ? `-${slug(String(by[0]))}` : '';
  const base = `learned-${what}`.slice(0, 32 - who.length).replace(/-+$/, '') + who;
  let name = base.slice(0, 32);
  for (let i = 2; taken.has(name); i++) name = `${base.slice(0, 32 - String(i).length - 1)}-${i}`;
  return name;
}

function iso(ms: number | undefined): string {
  return ms === undefined ? 'unknown' : new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The comment lines above a learned rule. */
export function ruleComment(r: LearnedRule, describeUser: (uid: number) => string): string[] {
  const lines = [`${r.connections} connection${r.connections === 1 ? '' : 's'} seen, first ${iso(r.first)}, last ${iso(r.last)}`];
  if (r.to.length > 1) {
    const shown = r.perDestination.slice(0, 6).map((d) => `${d.to} ${d.connections}`);
    lines.push(`per destination: ${shown.join(', ')}${r.perDestination.length > 6 ? `, and ${r.perDestination.length - 6} more` : ''}`);
  }
  for (const c of r.collapsed) lines.push(`${c.prefix} stands for ${c.seen.length} addresses seen: ${c.seen.slice(0, 6).join(', ')}${c.seen.length > 6 ? ', …' : ''}`);
  // Names a wildcard stands for are listed on its line instead.
  const named = r.names.filter((n) => !r.wildcards.some((w) => w.seen.includes(n.name)));
  for (const n of named.slice(0, 6))
    lines.push(`${n.name}: the DNS forwarder had just answered it with ${n.addresses.slice(0, 4).join(', ')}${n.addresses.length > 4 ? ', …' : ''}${n.sameUser ? ' (to the same user)' : ''}`);
  if (named.length > 6) lines.push(`and ${named.length - 6} more names from the DNS forwarder's answers`);
  for (const w of r.wildcards) lines.push(`${w.pattern} stands for ${w.seen.length} names seen: ${w.seen.slice(0, 6).join(', ')}${w.seen.length > 6 ? ', …' : ''}`);
  for (const u of r.unnamed.slice(0, 6)) lines.push(`${u.address} was answered for ${u.name}, kept as the address: ${u.why}`);
  if (r.from.length) {
    lines.push(...forwardedFrom(r.flows));
    return lines;
  }
  const uids = new Map<number, number>();
  for (const f of r.flows) if (f.uid !== undefined) uids.set(f.uid, (uids.get(f.uid) ?? 0) + f.connections);
  if (r.users.length === 0 && uids.size) lines.push(`users seen: ${[...uids].sort((a, b) => b[1] - a[1]).slice(0, 6).map(([u, n]) => `${describeUser(u)} ${n}`).join(', ')}`);
  if (r.users.length === 0 && !uids.size) lines.push('no uid in the log lines: this rule allows every user');
  return lines;
}

/** Where forwarded flows came from: per input interface, the source addresses and their connections. */
export function forwardedFrom(flows: readonly SeenFlow[]): string[] {
  return groupBy(
    flows.filter((f) => f.forwarded),
    (f) => f.forwarded!.in,
  ).map((fs) => {
    const per = new Map<string, number>();
    for (const f of fs) per.set(f.forwarded!.src, (per.get(f.forwarded!.src) ?? 0) + f.connections);
    const shown = [...per].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    return `forwarded from ${fs[0]!.forwarded!.in}, per source address: ${shown.slice(0, 6).map(([a, n]) => `${a} ${n}`).join(', ')}${shown.length > 6 ? `, and ${shown.length - 6} more` : ''}`;
  });
}

/** The learned rules as YAML sequence items (no `allow:` key), ready to indent and merge. */
export function learnedYaml(rules: readonly LearnedRule[], describeUser: (uid: number) => string): string {
  if (!rules.length) return '';
  const doc = new Document(
    rules.map((r) => {
      const o: Record<string, unknown> = { name: r.name, reason: r.reason, ...(r.from.length ? { from: r.from } : {}), to: r.to };
      if (r.ports.length) o.ports = r.ports;
      if (r.icmp.length) o.icmp = r.icmp;
      if (r.users.length) o.user = r.users.length === 1 ? r.users[0] : r.users;
      return o;
    }),
  );
  const seq = doc.contents as YAMLSeq;
  seq.items.forEach((item, i) => {
    const m = item as YAMLMap;
    m.commentBefore = ruleComment(rules[i]!, describeUser)
      .map((l) => ` ${l}`)
      .join('\n');
    if (i > 0) m.spaceBefore = true;
    for (const k of ['from', 'to', 'ports', 'icmp', 'user']) {
      const v = m.get(k, true) as YAMLSeq | Scalar | undefined;
      if (v && 'items' in v) {
        v.flow = true;
        for (const s of v.items as Scalar[]) if (typeof s.value === 'string' && (s.value.includes(':') || s.value.startsWith('*'))) s.type = Scalar.QUOTE_DOUBLE;
      }
    }
  });
  return doc.toString({ flowCollectionPadding: false, lineWidth: 0 });
}

/** The learned rules checked against the policy they were merged into. */
export interface Verified {
  /** How many learned flows were decided. */
  flows: number;
  /** Those the merged policy would not accept: none, unless hostnames resolved differently. */
  stillDenied: SeenFlow[];
  /** Set when the merged policy does not load (a bug in the merge, not in the user's policy): what loading it said. */
  broken?: Loaded;
}

/**
 * Load `merged` (the policy with the learned rules, shown as `name`) and
 * decide every learned flow with it: all must be accepted (enforce verdict).
 * With nothing learned, nothing is loaded.
 */
export async function verifyLearned(learned: Learned, accounts: Accounts, name: string, merged: string, opts: LoadOptions): Promise<Verified> {
  const flows = learned.rules.flatMap((r) => r.flows);
  if (!flows.length) return { flows: 0, stillDenied: [] };
  const l = await loadPolicyText(name, merged, opts);
  if (hasErrors(l.diagnostics) || !l.ir) return { flows: flows.length, stillDenied: [], broken: l };
  const ir = l.ir;
  const maker = new FlowMaker(accountNames(accounts));
  const stillDenied: SeenFlow[] = [];
  // Flows written as a name: decided once the forwarder answered the name with their addresses (and not at all if it refuses the name).
  for (const fs of groupBy(flows, (f) => f.name ?? '')) {
    const asked = fs[0]!.name;
    if (asked !== undefined && nameOutcome(ir, asked)?.answer !== 'published') {
      stillDenied.push(...fs);
      continue;
    }
    const evaluate = indexedEvaluator(asked === undefined ? ir : withAnswer(ir, asked, fs.map((f) => parseAddress(f.dst)!)));
    for (const f of fs) {
      const flow = maker.flow({ source: 'netfilter', prefix: '', verdict: 'denied', family: f.family, src: f.forwarded?.src ?? '', ...(f.forwarded ? { in: f.forwarded.in } : {}), dst: f.dst, proto: f.proto, protoNum: f.protoNum, ...(f.port !== undefined ? { dpt: f.port } : {}), ...(f.icmpType !== undefined ? { icmpType: f.icmpType } : {}), ...(f.uid !== undefined ? { uid: f.uid } : {}), ...(f.gid !== undefined ? { gid: f.gid } : {}) });
      if (!flow || evaluate(flow).verdict !== 'accept') stillDenied.push(f);
    }
  }
  return { flows: flows.length, stillDenied };
}
