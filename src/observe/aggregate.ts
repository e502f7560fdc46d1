/**
 * Events → Stats: what `egress stats` (and `replay`, which shows its answer
 * the same way) report. Connections are deduplicated attempts (dedupe.ts);
 * packets are log lines. Names are attached at the end (`finish`): hostnames
 * from the policy's resolved hosts, user names from the accounts, full rule
 * names from the policy (a cut tag "~hhh" is mapped back with matchTag).
 *
 * Forwarded events (a container's or VM's, `LogEvent.in` set) count in the
 * totals, the destinations and the rules like the host's, but apart where
 * they differ: their rules are rows of their own (`scope: 'forward'`), they
 * have no user (a row `forwarded: true` stands for them in the users), and
 * `forwarded` (forward-stats.ts) breaks them down by source.
 */
import { matchTag } from '../backends/log-tag.js';
import type { Family } from '../policy/address.js';
import { icmpTypeName } from '../policy/protocols.js';
import type { EventProto, EventVerdict, LogEvent, ReadCounts } from '../logs/event.js';
import type { SourceShape } from '../sim/forward.js';
import { DestTable, type DestTableState } from './dest-table.js';
import { ForwardTally, type ForwardState, type ForwardStats } from './forward-stats.js';

/** The uid of a forwarded event in a destination's users: it has no socket, hence no owner. */
const FORWARDED = -2;
/** The rule key of a forwarded flow from no source (tags U, u): not a rule name (those are [a-z0-9_-]). */
const UNLISTED_KEY = '(unlisted)';

export interface DestinationStat {
  family: Family;
  dst: string;
  proto: EventProto;
  protoNum: number;
  /** tcp/udp/sctp destination port. */
  port?: number;
  /** ICMP type (number in the family, and its family-neutral name). */
  icmpType?: number;
  icmp?: string;
  /** The policy hostname this address came from, when it did. */
  host?: string;
  connections: number;
  packets: number;
  first?: number;
  last?: number;
  /** Connections per uid, most first; without uid: not logged, or `forwarded` (a container's or VM's: no owner). */
  users: { uid?: number; user?: string; forwarded?: true; connections: number }[];
  /** Rules (full names where known; "-" = the default) that denied it. */
  rules: string[];
}

export interface UserStat {
  uid?: number;
  user?: string;
  /** The row of the forwarded connections (they have no owner). */
  forwarded?: true;
  connections: number;
  packets: number;
}

export interface RuleStat {
  /** Full rule name when known; undefined for the default or an untagged line. */
  rule?: string;
  /** The tag as logged ("-" for the default); absent on untagged lines. */
  logged?: string;
  /** The default verdict decided (tag P/p). */
  isDefault: boolean;
  /** A forwarded flow from no source (tag U/u, or replay's step "unlisted"). */
  unlisted?: true;
  /** Forwarded traffic's (SPEC §6): a rule's forward denials are a row apart from its host denials. */
  scope?: 'forward';
  /** Untagged lines (another LOG rule, the Windows Firewall): the prefix they carried. */
  prefix?: string;
  verdict: Exclude<EventVerdict, 'allowed'>;
  connections: number;
  packets: number;
}

/** Connections per rule and user: the Prometheus series. */
export interface RuleUserStat {
  rule: string;
  user: string;
  verdict: Exclude<EventVerdict, 'allowed'>;
  connections: number;
  packets: number;
}

export interface Stats {
  counts: ReadCounts;
  /** From the tags seen: enforce (D/P), audit (d/p), both, or none seen. */
  mode: 'enforce' | 'audit' | 'mixed' | 'unknown';
  connections: number;
  packets: number;
  /** Connections blocked / that audit mode would have blocked. */
  denied: number;
  wouldDeny: number;
  first?: number;
  last?: number;
  prefixes: string[];
  /** The most-denied destinations, most first (all of them unless finish() was given a limit). */
  destinations: DestinationStat[];
  destinationCount: number;
  users: UserStat[];
  rules: RuleStat[];
  ruleUsers: RuleUserStat[];
  /** Connections per minute (minute = floor(ms / 60000)), for the timeline and before/after a change. */
  minutes: Map<number, number>;
  /** Forwarded events by source; absent when there were none. */
  forwarded?: ForwardStats;
}

export interface StatsContext {
  /** Canonical address → policy hostname. */
  hosts?: ReadonlyMap<string, string>;
  /** uid → user name. */
  users?: ReadonlyMap<number, string>;
  /** The policy's rule names, to map cut tags back. */
  ruleNames?: readonly string[];
  /** The policy's forward sources, to name where forwarded events came from (else: by input interface). */
  forwardSources?: readonly SourceShape[];
}

interface Acc {
  connections: number;
  packets: number;
}

interface RuleAcc extends Acc {
  /** Its number: its index in StatsBuilder.ruleList, and how the destination table names it. */
  id: number;
  /** Its key in StatsBuilder.rules[verdict]. */
  key: string;
  verdict: Attribution['verdict'];
  /** The rule as logged (or the deciding rules, joined by ","); undefined for the default and untagged lines. */
  rule?: string;
  isDefault: boolean;
  unlisted: boolean;
  /** Forwarded events' rule (its key starts with ">"). */
  forward: boolean;
  /** Untagged lines: their prefix. */
  prefix?: string;
  /** Host events only (forwarded events have no owner; forward-stats.ts counts them per source). */
  users: Map<number, Acc>;
}

/** A StatsBuilder's accumulated data (see exportState). */
export interface BuilderState {
  dests: DestTableState;
  rules: Record<Attribution['verdict'], Map<string, RuleAcc>>;
  /** How many rules there are (their ids are 0..ruleCount-1). */
  ruleCount: number;
  minutes: Map<number, number>;
  prefixes: Set<string>;
  connections: number;
  packets: number;
  denied: number;
  wouldDeny: number;
  enforceTags: number;
  auditTags: number;
  first: number;
  last: number;
  fwd: ForwardState;
}

/** What decided an event, when replay re-decides it with another policy. */
export interface Attribution {
  verdict: Exclude<EventVerdict, 'allowed'>;
  /** Deciding rule names; empty = the default. */
  rules: readonly string[];
  /** rules.join(","), when the caller has it at hand (saves a join per event). */
  key?: string;
  /** A forwarded flow from no source (decided by `forward.unlisted`), not by a rule or the default. */
  unlisted?: boolean;
}

/**
 * Accumulates events. The hot path of `stats` after parsing: keys are the
 * parser's interned strings and numbers, maps are nested rather than keyed
 * by concatenated strings, so an event allocates nothing that survives.
 */
export class StatsBuilder {
  /** Per destination × protocol × port (dest-table.ts). */
  private readonly dests = new DestTable();
  /** Per verdict (denied, would-deny): rule key → accumulator. */
  private readonly rules = { denied: new Map<string, RuleAcc>(), 'would-deny': new Map<string, RuleAcc>() };
  /** Every rule accumulator, by id. */
  private readonly ruleList: RuleAcc[] = [];
  private readonly minutes = new Map<number, number>();
  private readonly prefixes = new Set<string>();
  private lastPrefix: string | undefined;
  private lastRule: RuleAcc | undefined;
  private lastRuleKey: string | undefined;
  private minute = 0;
  private minuteCount = 0;
  private connections = 0;
  private packets = 0;
  private denied = 0;
  private wouldDeny = 0;
  private enforceTags = 0;
  private auditTags = 0;
  private first = Infinity;
  private last = -Infinity;
  private readonly fwd = new ForwardTally();

  /**
   * Everything accumulated, as plain data (Maps, Sets and objects survive
   * structured clone): what a worker of the parallel reader posts back.
   */
  exportState(): BuilderState {
    this.flushMinute();
    const { rules, minutes, prefixes, connections, packets, denied, wouldDeny, enforceTags, auditTags, first, last } = this;
    return { dests: this.dests.exportState(), rules, ruleCount: this.ruleList.length, minutes, prefixes, connections, packets, denied, wouldDeny, enforceTags, auditTags, first, last, fwd: this.fwd.byIn };
  }

  /** Add another builder's state (a later or earlier part of the same logs). */
  merge(o: BuilderState): void {
    this.flushMinute();
    this.lastRule = this.lastRuleKey = this.lastPrefix = undefined;
    this.connections += o.connections;
    this.packets += o.packets;
    this.denied += o.denied;
    this.wouldDeny += o.wouldDeny;
    this.enforceTags += o.enforceTags;
    this.auditTags += o.auditTags;
    this.first = Math.min(this.first, o.first);
    this.last = Math.max(this.last, o.last);
    for (const p of o.prefixes) this.prefixes.add(p);
    for (const [m, n] of o.minutes) this.minutes.set(m, (this.minutes.get(m) ?? 0) + n);
    this.fwd.merge(o.fwd);
    // Into an empty builder (the first part of a parallel read), its rules keep their numbers and its destination table is taken as it is, not copied.
    const empty = this.dests.rows === 0 && this.ruleList.length === 0;
    // Its rule ids → mine.
    const ruleOf = new Int32Array(o.ruleCount);
    for (const byRule of [o.rules.denied, o.rules['would-deny']])
      for (const r of byRule.values()) {
        const mine = this.rules[r.verdict];
        let x = mine.get(r.key);
        if (!x) {
          x = { ...r, id: empty ? r.id : this.ruleList.length, connections: 0, packets: 0, users: new Map() };
          mine.set(r.key, x);
          this.ruleList[x.id] = x;
        }
        ruleOf[r.id] = x.id;
        x.connections += r.connections;
        x.packets += r.packets;
        for (const [uid, a] of r.users) {
          const u = x.users.get(uid);
          if (u) {
            u.connections += a.connections;
            u.packets += a.packets;
          } else x.users.set(uid, { ...a });
        }
      }
    if (empty) this.dests.adopt(o.dests);
    else this.dests.merge(o.dests, ruleOf);
  }

  /** One event; `isNew` from the Deduper. `by` overrides what the log says decided it (replay). */
  add(e: LogEvent, isNew: boolean, by?: Attribution): void {
    const verdict = by?.verdict ?? (e.verdict === 'allowed' ? undefined : e.verdict);
    if (!verdict) return;
    const c = isNew ? 1 : 0;
    this.packets++;
    this.connections += c;
    if (verdict === 'denied') this.denied += c;
    else this.wouldDeny += c;
    // u says nothing about the mode: `forward.unlisted: warn` logs it in enforce mode too.
    if (!by && e.tag && e.tag !== 'u') {
      if (e.tag === 'D' || e.tag === 'P' || e.tag === 'B' || e.tag === 'U') this.enforceTags++;
      else this.auditTags++;
    }
    if (e.prefix !== this.lastPrefix) {
      this.prefixes.add(e.prefix);
      this.lastPrefix = e.prefix;
    }
    const t = e.time;
    if (t !== undefined) {
      if (t < this.first) this.first = t;
      if (t > this.last) this.last = t;
      if (c) {
        // Logs are in time order: count the current minute in a field, touch the map when it changes.
        const m = Math.floor(t / 60_000);
        if (m !== this.minute) {
          this.flushMinute();
          this.minute = m;
        }
        this.minuteCount++;
      }
    }
    // Rule (the last one is remembered: runs of the same rule are common).
    let r: RuleAcc | undefined;
    const inIf = e.in;
    const unlisted = by ? by.unlisted === true : e.tag === 'U' || e.tag === 'u';
    let ruleKey = unlisted ? UNLISTED_KEY : by ? (by.rules.length ? by.key ?? by.rules.join(',') : '-') : e.tag ? e.rule ?? '-' : `\t${e.prefix}`;
    if (inIf !== undefined) ruleKey = `>${ruleKey}`;
    if (ruleKey === this.lastRuleKey && verdict === this.lastRule?.verdict) r = this.lastRule;
    else {
      const byRule = this.rules[verdict];
      r = byRule.get(ruleKey);
      if (!r) {
        const base = inIf !== undefined ? ruleKey.slice(1) : ruleKey;
        const isDefault = base === '-';
        r = { id: this.ruleList.length, key: ruleKey, verdict, rule: !isDefault && !unlisted && (by || e.tag) ? base : undefined, isDefault, unlisted, forward: inIf !== undefined, prefix: !by && !e.tag ? e.prefix : undefined, connections: 0, packets: 0, users: new Map() };
        byRule.set(ruleKey, r);
        this.ruleList.push(r);
      }
      this.lastRule = r;
      this.lastRuleKey = ruleKey;
    }
    r.connections += c;
    r.packets++;
    // User, per rule (the totals per user are summed in finish()); a forwarded event has none, it counts per source.
    const uid = inIf !== undefined ? FORWARDED : e.uid ?? -1;
    if (inIf !== undefined) this.fwd.add(e, inIf, c, verdict, ruleKey, unlisted);
    else {
      let ru = r.users.get(uid);
      if (!ru) r.users.set(uid, (ru = { connections: 0, packets: 0 }));
      ru.connections += c;
      ru.packets++;
    }
    // Destination.
    const port = e.proto === 'icmp' ? e.icmpType : e.dpt;
    const dk = e.protoNum * 70_000 + (port ?? 69_999);
    const ds = this.dests;
    let d = ds.find(e.dst, dk);
    if (d < 0) d = ds.open(e.dst, dk, { family: e.family, proto: e.proto, protoNum: e.protoNum, dpt: e.dpt ?? -1, icmpType: e.icmpType ?? -1 });
    ds.connections[d]! += c;
    ds.packets[d]!++;
    if (t !== undefined) {
      if (t < ds.first[d]!) ds.first[d] = t;
      if (t > ds.last[d]!) ds.last[d] = t;
    }
    if (c) {
      ds.addUser(d, uid, 1);
      ds.addRule(d, r.id);
    }
  }

  private flushMinute(): void {
    if (this.minuteCount) this.minutes.set(this.minute, (this.minutes.get(this.minute) ?? 0) + this.minuteCount);
    this.minuteCount = 0;
  }

  /** `top`: how many destinations get a full row (all by default); `destinationCount` says how many there were. */
  finish(counts: ReadCounts, ctx: StatsContext = {}, top = Infinity): Stats {
    const userName = (uid: number) => (uid < 0 ? undefined : ctx.users?.get(uid));
    const fullRule = (logged: string) => (ctx.ruleNames ? matchTag(logged, ctx.ruleNames) ?? logged : logged);
    const ruleLabel = (r: RuleAcc) => (r.unlisted ? UNLISTED_KEY : r.isDefault ? '-' : r.rule !== undefined ? fullRule(r.rule) : '');
    // Order every destination by cheap numeric keys; build the full rows (users, rules, names) only for the top.
    const ds = this.dests;
    const { connections: dc, packets: dp, dpt, icmpType } = ds;
    const dstOf = (r: number) => ds.dsts[ds.dst[r]!]!;
    // Rows in the order they appeared. (Ties left by the sort are rows of one destination, which were in that order too when they were objects in a Map per destination.)
    const all = Array.from({ length: ds.rows }, (_, r) => r);
    all.sort((a, b) => dc[b]! - dc[a]! || dp[b]! - dp[a]! || cmp(dstOf(a), dstOf(b)) || Math.max(dpt[a]!, icmpType[a]!) - Math.max(dpt[b]!, icmpType[b]!));
    const destinations: DestinationStat[] = all.slice(0, top).map((r) => {
      const d = ds.rowKey(r);
      const dst = dstOf(r);
      const out: DestinationStat = {
        family: d.family,
        dst,
        proto: d.proto,
        protoNum: d.protoNum,
        connections: dc[r]!,
        packets: dp[r]!,
        users: ds.usersOf(r).sort((a, b) => b[1] - a[1] || a[0] - b[0]).map(([uid, n]) => {
          if (uid === FORWARDED) return { forwarded: true as const, connections: n };
          const name = userName(uid);
          return { ...(uid >= 0 ? { uid } : {}), ...(name !== undefined ? { user: name } : {}), connections: n };
        }),
        rules: [...new Set(ds.rulesOf(r).map((id) => ruleLabel(this.ruleList[id]!)))].sort(),
      };
      if (d.proto === 'icmp') {
        out.icmpType = d.icmpType;
        out.icmp = icmpTypeName(d.family, d.icmpType);
      } else if (d.proto !== 'other') out.port = d.dpt;
      const host = ctx.hosts?.get(dst);
      if (host !== undefined) out.host = host;
      if (ds.first[r] !== Infinity) out.first = ds.first[r]!;
      if (ds.last[r] !== -Infinity) out.last = ds.last[r]!;
      return out;
    });
    this.flushMinute();
    const perUser = new Map<number, Acc>();
    for (const byRule of [this.rules.denied, this.rules['would-deny']])
      for (const r of byRule.values())
        for (const [uid, x] of r.users) {
          const u = perUser.get(uid);
          if (u) {
            u.connections += x.connections;
            u.packets += x.packets;
          } else perUser.set(uid, { ...x });
        }
    const users: UserStat[] = [...perUser].map(([uid, a]) => {
      const name = userName(uid);
      return { ...(uid >= 0 ? { uid } : {}), ...(name !== undefined ? { user: name } : {}), connections: a.connections, packets: a.packets };
    });
    const forwarded = this.fwd.finish((v, k) => ruleLabel(this.rules[v].get(k)!), ctx.forwardSources);
    if (forwarded) users.push({ forwarded: true, connections: forwarded.connections, packets: forwarded.packets });
    users.sort((a, b) => b.connections - a.connections || b.packets - a.packets || (a.uid ?? (a.forwarded ? -2 : -1)) - (b.uid ?? (b.forwarded ? -2 : -1)));
    const allRules = [...this.rules.denied.values(), ...this.rules['would-deny'].values()];
    const rules: RuleStat[] = allRules.map((r) => {
      const out: RuleStat = { isDefault: r.isDefault, verdict: r.verdict, connections: r.connections, packets: r.packets };
      if (r.unlisted) {
        out.unlisted = true;
        out.logged = '-';
      } else if (r.rule !== undefined) {
        out.rule = fullRule(r.rule);
        out.logged = r.rule;
      } else if (r.isDefault) out.logged = '-';
      else out.prefix = r.prefix!;
      if (r.forward) out.scope = 'forward';
      return out;
    });
    rules.sort((a, b) => b.connections - a.connections || b.packets - a.packets || cmp(a.rule ?? '', b.rule ?? ''));
    const ruleUsers: RuleUserStat[] = allRules.flatMap((r) =>
      [...r.users].map(([uid, x]) => ({
        rule: ruleLabel(r),
        user: uid < 0 ? '' : userName(uid) ?? String(uid),
        verdict: r.verdict,
        connections: x.connections,
        packets: x.packets,
      })),
    );
    // A rule logged both cut (iptables, 29 characters) and whole (nft) is one series.
    const merged = new Map<string, RuleUserStat>();
    for (const x of ruleUsers) {
      const k = `${x.rule}\t${x.user}\t${x.verdict}`;
      const m = merged.get(k);
      if (m) {
        m.connections += x.connections;
        m.packets += x.packets;
      } else merged.set(k, x);
    }
    const ruleUsersMerged = [...merged.values()].sort((a, b) => cmp(a.rule, b.rule) || cmp(a.user, b.user) || cmp(a.verdict, b.verdict));
    const mode = this.enforceTags && this.auditTags ? 'mixed' : this.enforceTags ? 'enforce' : this.auditTags ? 'audit' : 'unknown';
    const s: Stats = {
      counts,
      mode,
      connections: this.connections,
      packets: this.packets,
      denied: this.denied,
      wouldDeny: this.wouldDeny,
      prefixes: [...this.prefixes].sort(),
      destinations,
      destinationCount: all.length,
      users,
      rules,
      ruleUsers: ruleUsersMerged,
      minutes: this.minutes,
    };
    if (this.first !== Infinity) s.first = this.first;
    if (this.last !== -Infinity) s.last = this.last;
    if (forwarded) s.forwarded = forwarded;
    return s;
  }
}

/** Code-unit order: deterministic and much cheaper than localeCompare. */
function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export interface Timeline {
  bucketMinutes: number;
  /** Start of the first bucket (ms). */
  start: number;
  counts: number[];
}

const BUCKETS = [1, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 10080];

/** Connections over time in at most `maxBuckets` buckets of a round size. */
export function timeline(minutes: ReadonlyMap<number, number>, maxBuckets = 60): Timeline | undefined {
  if (!minutes.size) return undefined;
  let lo = Infinity;
  let hi = -Infinity;
  for (const m of minutes.keys()) {
    if (m < lo) lo = m;
    if (m > hi) hi = m;
  }
  const span = hi - lo + 1;
  const size = BUCKETS.find((b) => Math.ceil(span / b) <= maxBuckets) ?? Math.ceil(span / maxBuckets);
  const start = Math.floor(lo / size) * size;
  const counts = new Array<number>(Math.floor((hi - start) / size) + 1).fill(0);
  for (const [m, n] of minutes) counts[Math.floor((m - start) / size)]! += n;
  return { bucketMinutes: size, start: start * 60_000, counts };
}

/** The connections in [from, to) (ms). */
export function countBetween(minutes: ReadonlyMap<number, number>, from: number, to: number): number {
  const a = Math.ceil(from / 60_000);
  const b = Math.ceil(to / 60_000);
  let n = 0;
  if (b - a < minutes.size) {
    for (let m = a; m < b; m++) n += minutes.get(m) ?? 0;
  } else for (const [m, c] of minutes) if (m >= a && m < b) n += c;
  return n;
}
