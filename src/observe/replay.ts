/**
 * Replay: recorded traffic through a (candidate) policy's indexed evaluator.
 * Answers "what would this policy have denied?", the check before switching
 * audit to enforce, in the same shape `stats` reports.
 *
 * What the logs hold is what the policy that was live denied (or, in audit
 * mode, would have denied), plus Windows Firewall ALLOW lines where they are
 * logged: traffic that was accepted without a log line is not there, so a
 * replay can show what a candidate still denies or newly admits among those
 * flows, not what it would newly deny elsewhere.
 *
 * A forwarded event (a container's or VM's: `LogEvent.in` set) is replayed
 * as a forwarded flow — its input interface and source address, `via` its
 * output interface, no owner — so the candidate's `forward:` scope answers
 * for it (sources, `from:` rules, `forward.default`, `forward.unlisted`).
 */
import type { Ir } from '../ir/types.js';
import { formatAddress, parseAddress, specialPurpose } from '../policy/address.js';
import type { Accounts } from '../resolve/resolver.js';
import type { Decision, Flow, Owner } from '../sim/flow.js';
import { nameOutcome, withAnswer } from '../sim/dns.js';
import { buildIndex } from '../sim/indexed.js';
import type { NameIndex } from './names.js';
import { StatsBuilder, type Attribution, type Stats, type StatsContext } from './aggregate.js';
import type { LogEvent, ReadCounts } from '../logs/event.js';
import { assertNever } from '../diag/diagnostic.js';

/** Id → name tables from the resolver's accounts (name → id). */
export function accountNames(a: Accounts | undefined): { users: Map<number, string>; groups: Map<number, string> } {
  const invert = (m: Map<string, number> | undefined) => {
    const out = new Map<number, string>();
    for (const [name, id] of m ?? []) if (!out.has(id)) out.set(id, name);
    return out;
  };
  return { users: invert(a?.users), groups: invert(a?.groups) };
}

/** Turns events into flows for the evaluators, caching address parsing. */
export class FlowMaker {
  private readonly addrs = new Map<string, bigint>();
  constructor(private readonly names: { users: Map<number, string>; groups: Map<number, string> }) {}

  private address(text: string): bigint | undefined {
    let v = this.addrs.get(text);
    if (v === undefined) {
      const a = parseAddress(text);
      if (!a) return undefined;
      v = a.value;
      if (this.addrs.size > 100_000) this.addrs.clear();
      this.addrs.set(text, v);
    }
    return v;
  }

  flow(e: LogEvent): Flow | undefined {
    const dst = this.address(e.dst);
    if (dst === undefined) return undefined;
    const f: Flow = { family: e.family, dst, proto: e.proto };
    if (e.proto === 'icmp') {
      if (e.icmpType !== undefined) f.icmpType = e.icmpType;
    } else if (e.proto !== 'other' && e.dpt !== undefined) f.port = e.dpt;
    if (e.in !== undefined) {
      // Forwarded: judged by its source (input interface and source address); it has no owner.
      const src = this.address(e.src);
      f.forwarded = src === undefined ? { in: e.in } : { in: e.in, src };
      if (e.out) f.via = e.out;
      return f;
    }
    const owner = (id: number | undefined, names: Map<number, string>): Owner | undefined => {
      if (id === undefined) return undefined;
      const name = names.get(id);
      return name !== undefined ? { id, name } : { id };
    };
    const user = owner(e.uid, this.names.users);
    const group = owner(e.gid, this.names.groups);
    if (user) f.user = user;
    if (group) f.group = group;
    if (e.out) f.via = e.out;
    return f;
  }
}

/** The evaluation key of an event: everything a flow is made of (a forwarded one's source too). */
export function flowKey(e: LogEvent): string {
  const port = e.proto === 'icmp' ? e.icmpType : e.dpt;
  const host = `${e.dst} ${e.protoNum} ${port ?? ''} ${e.uid ?? ''} ${e.gid ?? ''} ${e.out ?? ''}`;
  return e.in === undefined ? host : `${host} ${e.in} ${e.src}`;
}

/** What admitted a flow, as `ReplaySummary.admittedBy` names it. */
export function admittedByLabel(ir: Ir, d: Decision): string {
  switch (d.step) {
    case 'builtin':
      return `builtin:${d.builtin}`;
    case 'default':
      return '(default accept)';
    case 'unlisted':
      return ir.forward ? `(unlisted: forward.unlisted ${ir.forward.unlisted})` : '(forwarded: the policy has no forward scope)';
    case 'allow':
    case 'deny':
      return d.rules.map((r) => r.name).join(',');
    default:
      return assertNever(d.step);
  }
}

export interface ReplaySummary {
  /** Connections replayed (deduplicated), and how the candidate decides them. */
  connections: number;
  denied: number;
  admitted: number;
  /** Which allow rules (or builtins) would admit what was denied, most first. */
  admittedBy: { rule: string; connections: number }[];
  /** Events that could not be turned into a flow. */
  unreadable: number;
}

export class Replayer {
  readonly stats = new StatsBuilder();
  private readonly evaluate: (f: Flow) => Decision;
  private readonly cache = new Map<string, Decision | null>();
  private readonly flows: FlowMaker;
  private readonly admittedBy = new Map<string, number>();
  private readonly attributions = new WeakMap<Decision, Attribution>();
  private connections = 0;
  private denied = 0;
  private admitted = 0;
  private unreadable = 0;

  /** Evaluators of the IR as it is once the forwarder answered a name with an address (`names`), by name and address. */
  private readonly answered = new Map<string, (f: Flow) => Decision>();

  /**
   * `names`: the DNS forwarder's answers. With them, a connection the
   * policy's addresses alone leave to the default is decided as it is once
   * the forwarder answered the name it had just given the address out for
   * (with `dns.proxy`, an allow rule naming it holds the address then).
   */
  constructor(
    readonly ir: Ir,
    accounts?: Accounts,
    private readonly names?: NameIndex,
  ) {
    this.evaluate = buildIndex(ir).evaluate;
    this.flows = new FlowMaker(accountNames(accounts));
  }

  decide(e: LogEvent): Decision | undefined {
    const k = flowKey(e);
    let d = this.cache.get(k);
    if (d === undefined) {
      const f = this.flows.flow(e);
      d = f ? this.evaluate(f) : null;
      if (this.cache.size > 200_000) this.cache.clear();
      this.cache.set(k, d);
    }
    if (d && d.step === 'default' && this.names && e.time !== undefined) return this.decideAnswered(e, d);
    return d ?? undefined;
  }

  private decideAnswered(e: LogEvent, d: Decision): Decision {
    const a = this.names!.lookup(e.dst, e.time!, e.uid);
    if (!a || nameOutcome(this.ir, a.name)?.answer !== 'published') return d;
    const key = `${a.name} ${e.dst}`;
    let evaluate = this.answered.get(key);
    if (!evaluate) {
      evaluate = buildIndex(withAnswer(this.ir, a.name, [parseAddress(e.dst)!])).evaluate;
      if (this.answered.size > 10_000) this.answered.clear();
      this.answered.set(key, evaluate);
    }
    const f = this.flows.flow(e);
    return f ? evaluate(f) : d;
  }

  add(e: LogEvent, isNew: boolean): void {
    const d = this.decide(e);
    if (!d) {
      if (isNew) this.unreadable++;
      return;
    }
    const c = isNew ? 1 : 0;
    this.connections += c;
    if (d.verdict === 'accept') {
      this.admitted += c;
      if (c) {
        const by = admittedByLabel(this.ir, d);
        this.admittedBy.set(by, (this.admittedBy.get(by) ?? 0) + 1);
      }
      return;
    }
    this.denied += c;
    let by = this.attributions.get(d);
    if (!by) {
      const rules = d.step === 'deny' ? d.rules.map((r) => r.name) : [];
      by = { verdict: d.audit ? 'would-deny' : 'denied', rules, key: rules.join(','), ...(d.step === 'unlisted' ? { unlisted: true } : {}) };
      this.attributions.set(d, by);
    }
    this.stats.add(e, isNew, by);
  }

  finish(counts: ReadCounts, ctx: StatsContext, top = Infinity): { stats: Stats; summary: ReplaySummary } {
    return {
      stats: this.stats.finish(counts, ctx, top),
      summary: {
        connections: this.connections,
        denied: this.denied,
        admitted: this.admitted,
        admittedBy: [...this.admittedBy].map(([rule, connections]) => ({ rule, connections })).sort((a, b) => b.connections - a.connections || a.rule.localeCompare(b.rule)),
        unreadable: this.unreadable,
      },
    };
  }
}

/**
 * Canonical address → policy hostname, from the IR's resolved hosts. A
 * special-purpose address a name resolved to is not the name's: no rule
 * naming it admits it (D16), so learn must not write the name for it.
 */
export function hostsByAddress(ir: Ir | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const h of ir?.hosts ?? [])
    for (const a of [...h.ipv4, ...h.ipv6]) {
      const p = parseAddress(a);
      if (!p || specialPurpose(a)) continue;
      const text = formatAddress(p.family, p.value);
      if (!out.has(text)) out.set(text, h.name);
    }
  return out;
}

