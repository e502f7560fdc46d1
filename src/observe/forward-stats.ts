/**
 * Forwarded denials (SPEC §6: containers' and VMs' traffic this host routes),
 * kept apart from the host's: accumulated per input interface and source
 * address as logged, and named only at the end — by the forward sources of
 * the policy given (`sim/forward.ts sourcesOf`, the same membership the
 * evaluators use), or by input interface without one. A host has few such
 * pairs (one per workload address), so the naming costs nothing per event.
 */
import { formatAddress, parseAddress, type Family } from '../policy/address.js';
import { sourcesOf, type SourceShape } from '../sim/forward.js';
import type { EventVerdict, LogEvent } from '../logs/event.js';

type Verdict = Exclude<EventVerdict, 'allowed'>;

interface Acc {
  connections: number;
  packets: number;
}

/** One (input interface, source address) pair's tally. */
export interface ForwardAcc extends Acc {
  family: Family;
  in: string;
  /** The source address as logged (IPv6 expanded). */
  src: string;
  denied: number;
  wouldDeny: number;
  /** Connections logged with tag U (denied) and u (let through); replay: decided as unlisted. */
  unlistedDenied: number;
  unlistedPassed: number;
  /** Infinity / -Infinity until an event with a time. */
  first: number;
  last: number;
  /** Per verdict: the StatsBuilder's rule key → counts (the Prometheus series per source and rule). */
  rules: Record<Verdict, Map<string, Acc>>;
}

/** Input interface → source address → tally: what a worker posts back (plain Maps survive structured clone). */
export type ForwardState = Map<string, Map<string, ForwardAcc>>;

export interface ForwardRuleStat {
  /** As in `RuleUserStat.rule`: the rule, "-" = the forward default, "(unlisted)" = from no source, "" = untagged. */
  rule: string;
  verdict: Verdict;
  connections: number;
  packets: number;
}

export interface ForwardSourceStat {
  /**
   * With a policy: the forward sources these packets belong to, by input
   * interface and source address (several when sources overlap); [] = none
   * (unlisted). Absent without a policy: the rows are then per input interface.
   */
  sources?: string[];
  /** Input interfaces seen (IN=). */
  interfaces: string[];
  /** Source addresses seen (SRC=, canonical), most connections first, at most ADDRESSES_SHOWN. */
  addresses: string[];
  addressCount: number;
  connections: number;
  packets: number;
  denied: number;
  wouldDeny: number;
  /** Connections logged as from no source (tags U and u). */
  unlisted: number;
  first?: number;
  last?: number;
  rules: ForwardRuleStat[];
}

export interface ForwardStats {
  connections: number;
  packets: number;
  denied: number;
  wouldDeny: number;
  /**
   * Connections from no source: `denied` logged with tag U (`forward.unlisted:
   * deny`), `passed` with tag u (let through: `warn`, or audit mode). In
   * replay: those the candidate decides as unlisted.
   */
  unlisted: { denied: number; passed: number };
  /** Most connections first. */
  sources: ForwardSourceStat[];
}

export const ADDRESSES_SHOWN = 10;

export class ForwardTally {
  readonly byIn: ForwardState = new Map();
  private lastIn: string | undefined;
  private lastPerIn: Map<string, ForwardAcc> | undefined;

  /** One forwarded event (`e.in` set), decided `verdict` by the rule `ruleKey`; `c`: 1 when it starts a connection. */
  add(e: LogEvent, inIf: string, c: number, verdict: Verdict, ruleKey: string, unlisted: boolean): void {
    let perIn: Map<string, ForwardAcc> | undefined;
    if (inIf === this.lastIn) perIn = this.lastPerIn!;
    else {
      perIn = this.byIn.get(inIf);
      if (!perIn) this.byIn.set(inIf, (perIn = new Map()));
      this.lastIn = inIf;
      this.lastPerIn = perIn;
    }
    let a = perIn.get(e.src);
    if (!a) {
      a = { family: e.family, in: inIf, src: e.src, connections: 0, packets: 0, denied: 0, wouldDeny: 0, unlistedDenied: 0, unlistedPassed: 0, first: Infinity, last: -Infinity, rules: { denied: new Map(), 'would-deny': new Map() } };
      perIn.set(e.src, a);
    }
    a.connections += c;
    a.packets++;
    if (verdict === 'denied') a.denied += c;
    else a.wouldDeny += c;
    if (unlisted) {
      if (verdict === 'denied') a.unlistedDenied += c;
      else a.unlistedPassed += c;
    }
    const t = e.time;
    if (t !== undefined) {
      if (t < a.first) a.first = t;
      if (t > a.last) a.last = t;
    }
    const byRule = a.rules[verdict];
    let r = byRule.get(ruleKey);
    if (!r) byRule.set(ruleKey, (r = { connections: 0, packets: 0 }));
    r.connections += c;
    r.packets++;
  }

  /** Add another tally's state (StatsBuilder.merge). */
  merge(o: ForwardState): void {
    this.lastIn = this.lastPerIn = undefined;
    for (const [inIf, perIn] of o) {
      let mine = this.byIn.get(inIf);
      if (!mine) this.byIn.set(inIf, (mine = new Map()));
      for (const [src, a] of perIn) {
        let x = mine.get(src);
        if (!x) {
          x = { ...a, connections: 0, packets: 0, denied: 0, wouldDeny: 0, unlistedDenied: 0, unlistedPassed: 0, first: Infinity, last: -Infinity, rules: { denied: new Map(), 'would-deny': new Map() } };
          mine.set(src, x);
        }
        x.connections += a.connections;
        x.packets += a.packets;
        x.denied += a.denied;
        x.wouldDeny += a.wouldDeny;
        x.unlistedDenied += a.unlistedDenied;
        x.unlistedPassed += a.unlistedPassed;
        x.first = Math.min(x.first, a.first);
        x.last = Math.max(x.last, a.last);
        for (const v of ['denied', 'would-deny'] as const)
          for (const [k, r] of a.rules[v]) {
            const y = x.rules[v].get(k);
            if (y) {
              y.connections += r.connections;
              y.packets += r.packets;
            } else x.rules[v].set(k, { ...r });
          }
      }
    }
  }

  /**
   * The rows, grouped by the policy's sources (`sources` given) or by input
   * interface; `ruleLabel` turns the StatsBuilder's rule keys into labels.
   * Undefined when no forwarded event was seen.
   */
  finish(ruleLabel: (verdict: Verdict, key: string) => string, sources?: readonly SourceShape[]): ForwardStats | undefined {
    if (!this.byIn.size) return undefined;
    const out: ForwardStats = { connections: 0, packets: 0, denied: 0, wouldDeny: 0, unlisted: { denied: 0, passed: 0 }, sources: [] };
    interface Row {
      stat: ForwardSourceStat;
      interfaces: Set<string>;
      addresses: Map<string, number>;
      rules: Map<string, ForwardRuleStat>;
      first: number;
      last: number;
    }
    const rows = new Map<string, Row>();
    for (const perIn of this.byIn.values())
      for (const a of perIn.values()) {
        const parsed = parseAddress(a.src);
        let key: string;
        let names: string[] | undefined;
        if (sources) {
          names = sourcesOf(sources, { family: a.family, dst: 0n, proto: 'other', forwarded: { in: a.in, ...(parsed ? { src: parsed.value } : {}) } }).sort();
          key = names.join(',');
        } else key = a.in;
        let row = rows.get(key);
        if (!row) {
          const stat: ForwardSourceStat = { ...(names ? { sources: names } : {}), interfaces: [], addresses: [], addressCount: 0, connections: 0, packets: 0, denied: 0, wouldDeny: 0, unlisted: 0, rules: [] };
          rows.set(key, (row = { stat, interfaces: new Set(), addresses: new Map(), rules: new Map(), first: Infinity, last: -Infinity }));
        }
        const s = row.stat;
        s.connections += a.connections;
        s.packets += a.packets;
        s.denied += a.denied;
        s.wouldDeny += a.wouldDeny;
        s.unlisted += a.unlistedDenied + a.unlistedPassed;
        row.first = Math.min(row.first, a.first);
        row.last = Math.max(row.last, a.last);
        row.interfaces.add(a.in);
        const addr = parsed ? formatAddress(parsed.family, parsed.value) : a.src;
        row.addresses.set(addr, (row.addresses.get(addr) ?? 0) + a.connections);
        for (const v of ['denied', 'would-deny'] as const)
          for (const [k, r] of a.rules[v]) {
            const label = ruleLabel(v, k);
            const rk = `${label}\t${v}`;
            const x = row.rules.get(rk);
            if (x) {
              x.connections += r.connections;
              x.packets += r.packets;
            } else row.rules.set(rk, { rule: label, verdict: v, connections: r.connections, packets: r.packets });
          }
        out.connections += a.connections;
        out.packets += a.packets;
        out.denied += a.denied;
        out.wouldDeny += a.wouldDeny;
        out.unlisted.denied += a.unlistedDenied;
        out.unlisted.passed += a.unlistedPassed;
      }
    for (const row of rows.values()) {
      const s = row.stat;
      s.interfaces = [...row.interfaces].sort(cmp);
      const addrs = [...row.addresses].sort((x, y) => y[1] - x[1] || cmp(x[0], y[0]));
      s.addresses = addrs.slice(0, ADDRESSES_SHOWN).map(([x]) => x);
      s.addressCount = addrs.length;
      s.rules = [...row.rules.values()].sort((x, y) => cmp(x.rule, y.rule) || cmp(x.verdict, y.verdict));
      if (row.first !== Infinity) s.first = row.first;
      if (row.last !== -Infinity) s.last = row.last;
      out.sources.push(s);
    }
    out.sources.sort((x, y) => y.connections - x.connections || y.packets - x.packets || cmp((x.sources ?? x.interfaces).join(','), (y.sources ?? y.interfaces).join(',')));
    return out;
  }
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
