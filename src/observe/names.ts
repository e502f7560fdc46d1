/**
 * Names that follow DNS, from the forwarder's log (src/logs/dns-log.ts):
 *
 * - `NameStatsBuilder`: the `stats` "names" section — the names asked most
 *   (answers, published or forwarded), the rules that published them, how
 *   many addresses they were answered with, who asked, and the names refused.
 * - `NameIndex`: for `learn`, which name an address had just been given out
 *   for: an answer at time t for N with address A, alive for its lifetime
 *   (the forwarder's `max(min_lifetime, TTL + grace)`), explains a connection
 *   to A within [t, t + lifetime] as a connection to N.
 * - `siblingWildcards`: where many names under one domain were seen, the
 *   wildcard for them (`*.cdn.example.com`), never over a domain of fewer than
 *   two labels or one that looks like a public suffix (`co.uk`).
 */
import { parseName } from '../policy/dns-name.js';
import type { DnsReadCounts, NameRecord } from '../logs/dns-log.js';

export interface NameStat {
  name: string;
  /** Answers (published or forwarded). */
  answers: number;
  /** Of those, answers whose addresses allow rules' sets got first. */
  published: number;
  refused: number;
  /** The rules that published it (allow) or refused it (deny). */
  rules: string[];
  /** Distinct addresses it was answered with. */
  addresses: number;
  /** Who asked (when the forwarder could tell), most first. */
  users: { uid: number; user?: string; answers: number }[];
  /** Answers and refusals whose asker was not known. */
  unknownUser: number;
  first?: number;
  last?: number;
}

export interface NameStats {
  counts: DnsReadCounts;
  /** Distinct names answered; answers in all. */
  names: number;
  answers: number;
  /** The most-answered names, most first. */
  top: NameStat[];
  /** Distinct names refused; refusals in all. */
  refusedNames: number;
  refusals: number;
  /** The most-refused names, most first. */
  refused: NameStat[];
}

/** Distinct addresses kept per name: beyond it the count stays there (a name answered with thousands is rare and the exact number moot). */
const MAX_ADDRESSES = 10_000;

interface Acc {
  answers: number;
  published: number;
  refused: number;
  rules: Set<string>;
  addresses: Set<string>;
  users: Map<number, number>;
  unknownUser: number;
  first?: number;
  last?: number;
}

export class NameStatsBuilder {
  private readonly acc = new Map<string, Acc>();

  add(r: NameRecord): void {
    let a = this.acc.get(r.name);
    if (!a) this.acc.set(r.name, (a = { answers: 0, published: 0, refused: 0, rules: new Set(), addresses: new Set(), users: new Map(), unknownUser: 0 }));
    if (r.kind === 'refused') a.refused++;
    else {
      a.answers++;
      if (r.kind === 'publish') a.published++;
    }
    for (const x of r.rules) a.rules.add(x);
    for (const x of r.addresses) if (a.addresses.size < MAX_ADDRESSES) a.addresses.add(x);
    if (r.uid === undefined) a.unknownUser++;
    else a.users.set(r.uid, (a.users.get(r.uid) ?? 0) + 1);
    if (r.time !== undefined) {
      if (a.first === undefined || r.time < a.first) a.first = r.time;
      if (a.last === undefined || r.time > a.last) a.last = r.time;
    }
  }

  finish(counts: DnsReadCounts, top: number, users?: ReadonlyMap<number, string>): NameStats {
    const all = [...this.acc].map(([name, a]): NameStat => ({
      name,
      answers: a.answers,
      published: a.published,
      refused: a.refused,
      rules: [...a.rules].sort(),
      addresses: a.addresses.size,
      users: [...a.users]
        .sort((x, y) => y[1] - x[1] || x[0] - y[0])
        .map(([uid, n]) => ({ uid, ...(users?.has(uid) ? { user: users.get(uid)! } : {}), answers: n })),
      unknownUser: a.unknownUser,
      ...(a.first !== undefined ? { first: a.first } : {}),
      ...(a.last !== undefined ? { last: a.last } : {}),
    }));
    const answered = all.filter((s) => s.answers > 0).sort((x, y) => y.answers - x.answers || (x.name < y.name ? -1 : 1));
    const refused = all.filter((s) => s.refused > 0).sort((x, y) => y.refused - x.refused || (x.name < y.name ? -1 : 1));
    return {
      counts,
      names: answered.length,
      answers: answered.reduce((n, s) => n + s.answers, 0),
      top: answered.slice(0, top),
      refusedNames: refused.length,
      refusals: refused.reduce((n, s) => n + s.refused, 0),
      refused: refused.slice(0, top),
    };
  }
}

/** What `NameIndex.lookup` found: the name an address was given out for, and whether to the same user. */
export interface AnsweredFor {
  name: string;
  sameUser: boolean;
}

interface Given {
  name: string;
  from: number;
  until: number;
  uid?: number;
}

/** Log times have whole seconds (syslog): a connect logged up to this much before the answer's time is still after it. */
const SLACK_MS = 1000;

export class NameIndex {
  private readonly byAddress = new Map<string, Given[]>();

  /** `graceSec`/`minLifetimeSec`: the policy's `dns:` settings, for answers not published (the forwarder gave them no lifetime). */
  constructor(private readonly lifetime: { graceSec: number; minLifetimeSec: number }) {}

  get size(): number {
    return this.byAddress.size;
  }

  add(r: NameRecord): void {
    if (r.kind === 'refused' || r.time === undefined || !r.addresses.length) return;
    const sec = r.lifetime ?? Math.max(this.lifetime.minLifetimeSec, (r.ttl ?? 0) + this.lifetime.graceSec);
    const g: Given = { name: r.name, from: r.time, until: r.time + sec * 1000, ...(r.uid !== undefined ? { uid: r.uid } : {}) };
    for (const a of r.addresses) {
      const list = this.byAddress.get(a);
      if (list) list.push(g);
      else this.byAddress.set(a, [g]);
    }
  }

  /**
   * The name `address` had been given out for, alive at `time`: an answer to
   * the same uid when there is one, else to anyone; the latest such answer.
   */
  lookup(address: string, time: number, uid: number | undefined): AnsweredFor | undefined {
    const list = this.byAddress.get(address);
    if (!list) return undefined;
    let best: Given | undefined;
    let bestSame = false;
    for (const g of list) {
      if (time < g.from - SLACK_MS || time > g.until) continue;
      const same = uid !== undefined && g.uid === uid;
      if (!best || (same && !bestSame) || (same === bestSame && g.from > best.from)) {
        best = g;
        bestSame = same;
      }
    }
    return best && { name: best.name, sameUser: bestSame };
  }
}

/** At least this many distinct names under one domain become its wildcard. */
export const WILDCARD_AT = 3;

/** Second-level labels under which registrants get names (co.uk, com.au, …): never a wildcard's domain. */
const SUFFIX_LABELS = new Set(['ac', 'co', 'com', 'edu', 'gob', 'go', 'gov', 'govt', 'ltd', 'mil', 'ne', 'net', 'nic', 'or', 'org', 'plc', 'sch']);

/** Whether `*.domain` may be proposed: at least two labels, valid in a policy, not `co.uk`-like. */
function wildcardDomain(domain: string): boolean {
  const labels = domain.split('.');
  if (labels.length < 2) return false;
  if (labels.length === 2 && SUFFIX_LABELS.has(labels[0]!) && labels[1]!.length === 2) return false;
  return parseName(`*.${domain}`).kind === 'wildcard';
}

/**
 * Wildcards for crowded domains: the deepest domain under which at least
 * `at` of `names` lie (directly or deeper) becomes `*.domain`, standing for
 * them; then the next, over the names left. Returns pattern → names covered.
 */
export function siblingWildcards(names: readonly string[], at = WILDCARD_AT): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let left = [...new Set(names)];
  for (;;) {
    const under = new Map<string, string[]>();
    for (const n of left) {
      const labels = n.split('.');
      for (let i = 1; i < labels.length - 1; i++) {
        const d = labels.slice(i).join('.');
        const list = under.get(d);
        if (list) list.push(n);
        else under.set(d, [n]);
      }
    }
    const best = [...under]
      .filter(([d, ns]) => ns.length >= at && wildcardDomain(d))
      .sort((x, y) => y[0].split('.').length - x[0].split('.').length || y[1].length - x[1].length || (x[0] < y[0] ? -1 : 1))[0];
    if (!best) return out;
    out.set(`*.${best[0]}`, best[1].sort());
    const taken = new Set(best[1]);
    left = left.filter((n) => !taken.has(n));
  }
}
