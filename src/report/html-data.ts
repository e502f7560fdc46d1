/**
 * What the HTML report shows, as plain data (times ISO 8601 UTC, no Maps):
 * built here from what `stats` and `stale` compute (observe/), embedded in
 * the page as JSON and drawn from it (html.ts, html-svg.ts). Pure.
 */
import type { RuleCounter, Status } from '../kernel/status.js';
import type { HistoryAction } from '../kernel/history.js';
import { timeline, type DestinationStat, type RuleStat, type Stats, type UserStat } from '../observe/aggregate.js';
import type { ChangeStat } from '../observe/changes.js';
import type { CounterSample, RuleActivity } from '../observe/counters.js';
import type { ReadCounts } from '../logs/event.js';
import { formatIso } from '../logs/since.js';
import { HOST_SOURCE, type Policy, type Rule } from '../policy/types.js';
import { destinationText, serviceText, type KernelCounters } from './stats.js';

/** One bar of a top list. */
export interface Row {
  label: string;
  /** Connections (retransmissions within 60 s counted once). */
  count: number;
  /** Log lines. */
  packets: number;
  /** More for the tooltip. */
  detail?: string;
  /** A CSS class for the bar (the verdict). */
  kind?: string;
}

export interface VerdictView {
  connections: number;
  packets: number;
  destinationCount: number;
  destinations: Row[];
  users: Row[];
  rules: Row[];
}

export interface TimelineView {
  bucketMinutes: number;
  /** Start of the first bucket. */
  start: string;
  buckets: { start: string; denied: number; wouldDeny: number }[];
}

export interface ChangeView {
  time: string;
  action: HistoryAction;
  outcome: string;
  mode?: string;
  user?: string;
  policyHash?: string;
  message?: string;
  beforePerHour?: number;
  afterPerHour?: number;
  jump: boolean;
  note?: string;
}

export interface PictureNode {
  id: string;
  label: string;
  title?: string;
}

export interface PictureRule extends PictureNode {
  name: string;
  action: 'allow' | 'deny';
  /** Ports and ICMP types, as written. */
  service?: string;
  reason?: string;
  except?: string;
  /** The live kernel counter (both families, both scopes), when read. */
  packets?: number;
}

export interface PolicyPicture {
  who: PictureNode[];
  rules: PictureRule[];
  destinations: PictureNode[];
  links: { from: string; to: string }[];
  /** Rules and destinations left out of the picture (it stays readable; the JSON has them all in the policy file). */
  hiddenRules: number;
  hiddenDestinations: number;
}

export type CountersView =
  | { available: true; backend?: string; mode?: string; policyFile?: string; policyHash?: string; rows: RuleCounter[]; logging?: Status['logging'] }
  | { available: false; note: string };

export interface StaleView {
  days: number;
  file: string;
  samples: number;
  skipped: number;
  from?: string;
  to?: string;
  rules: RuleActivity[];
  /** Why there is nothing to show. */
  note?: string;
}

export interface ReportData {
  generated: string;
  version: string;
  policy: { file: string; mode: string; default: string; logPrefix: string; rules: number };
  logs: string[];
  since?: string;
  until?: string;
  first?: string;
  last?: string;
  /** What the logs held (ReadCounts without the problem list), and the events after --until. */
  lines: Omit<ReadCounts, 'problems'> & { afterUntil: number };
  /** From the tags seen: enforce (D/P), audit (d/p), both, or none seen. */
  logMode: Stats['mode'];
  denied: VerdictView;
  wouldDeny: VerdictView;
  timeline?: TimelineView;
  changes: ChangeView[];
  historyNote?: string;
  counters: CountersView;
  stale: StaleView;
  picture: PolicyPicture;
}

const PAGE_BUCKETS = 60;

export function userLabel(u: Pick<UserStat, 'uid' | 'user' | 'forwarded'>): string {
  if (u.forwarded) return '(forwarded: containers, VMs)';
  if (u.uid === undefined) return '(no uid logged)';
  return u.user !== undefined ? `${u.user} (${u.uid})` : `uid ${u.uid}`;
}

export function ruleLabel(r: RuleStat): string {
  const base = r.unlisted ? '(unlisted: from no forward source)' : r.isDefault ? '(default)' : r.rule ?? `(untagged: prefix "${(r.prefix ?? '').trimEnd()}")`;
  return base + (r.scope === 'forward' ? ' (forwarded)' : '');
}

export function destinationLabel(d: DestinationStat): string {
  return `${destinationText(d)} ${serviceText(d)}${d.host !== undefined ? ` (${d.host})` : ''}`;
}

/** One verdict's top lists (`s` aggregated only that verdict's events). */
export function verdictView(s: Stats, top: number, kind: string): VerdictView {
  const t = (ms: number | undefined) => (ms === undefined ? '' : formatIso(ms));
  return {
    connections: s.connections,
    packets: s.packets,
    destinationCount: s.destinationCount,
    destinations: s.destinations.slice(0, top).map((d) => ({
      label: destinationLabel(d),
      count: d.connections,
      packets: d.packets,
      kind,
      detail: [`users: ${d.users.map((u) => (u.forwarded ? 'forwarded' : u.uid === undefined ? '?' : u.user ?? String(u.uid))).join(', ') || '-'}`, `rules: ${d.rules.map((r) => (r === '-' ? '(default)' : r || '(untagged)')).join(', ')}`, `first ${t(d.first)}, last ${t(d.last)}`].join('\n'),
    })),
    users: s.users.slice(0, top).map((u) => ({ label: userLabel(u), count: u.connections, packets: u.packets, kind })),
    rules: s.rules.slice(0, top).map((r) => ({ label: ruleLabel(r), count: r.connections, packets: r.packets, kind, ...(r.logged && r.rule && r.logged !== r.rule ? { detail: `logged as ${r.logged}` } : {}) })),
  };
}

/** Both verdicts' connections per minute in the same buckets (at most PAGE_BUCKETS of a round size). */
export function timelineView(denied: ReadonlyMap<number, number>, wouldDeny: ReadonlyMap<number, number>, maxBuckets = PAGE_BUCKETS): TimelineView | undefined {
  const all = new Map(denied);
  for (const [m, n] of wouldDeny) all.set(m, (all.get(m) ?? 0) + n);
  const tl = timeline(all, maxBuckets);
  if (!tl) return undefined;
  const size = tl.bucketMinutes;
  const startMin = tl.start / 60_000;
  const buckets = tl.counts.map((_, i) => ({ start: formatIso(tl.start + i * size * 60_000), denied: 0, wouldDeny: 0 }));
  for (const [m, n] of denied) buckets[Math.floor((m - startMin) / size)]!.denied += n;
  for (const [m, n] of wouldDeny) buckets[Math.floor((m - startMin) / size)]!.wouldDeny += n;
  return { bucketMinutes: size, start: formatIso(tl.start), buckets };
}

export function changeViews(changes: readonly ChangeStat[]): ChangeView[] {
  return changes.map((c) => {
    const e = c.entry;
    const v: ChangeView = { time: formatIso(e.time), action: e.action, outcome: e.outcome, jump: c.jump };
    if (e.mode) v.mode = e.mode;
    if (e.user) v.user = e.user;
    if (e.policyHash) v.policyHash = e.policyHash;
    if (e.message) v.message = e.message;
    if (c.before) v.beforePerHour = c.before.perHour;
    if (c.after) v.afterPerHour = c.after.perHour;
    if (c.note) v.note = c.note;
    return v;
  });
}

export function countersView(c: KernelCounters): CountersView {
  if (c.kind === 'note') return { available: false, note: c.note };
  const st = c.status;
  return {
    available: true,
    ...(st.backend ? { backend: st.backend } : {}),
    ...(st.mode ? { mode: st.mode } : {}),
    ...(st.policyFile ? { policyFile: st.policyFile } : {}),
    ...(st.policyHash ? { policyHash: st.policyHash } : {}),
    rows: st.counters,
    ...(st.logging ? { logging: st.logging } : {}),
  };
}

export function staleView(s: { samples: CounterSample[]; skipped: number; path: string }, activity: RuleActivity[], days: number): StaleView {
  const rules = activity.map((a) => (a.lastHit ? { ...a, lastHit: formatIso(Date.parse(a.lastHit)) } : a));
  const v: StaleView = { days, file: s.path, samples: s.samples.length, skipped: s.skipped, rules };
  if (s.samples.length) {
    v.from = formatIso(Date.parse(s.samples[0]!.time));
    v.to = formatIso(Date.parse(s.samples.at(-1)!.time));
  } else v.note = `no counter samples in ${s.path}: record them with "egress stats --sample" (e.g. hourly from a timer)`;
  return v;
}

/** How many of each column the picture shows at most: beyond that it is a wall, not a picture. */
export const PICTURE_LIMITS = { rules: 60, destinations: 40, who: 30 };

/** The rules of a policy in file order. */
export function rulesInOrder(p: Policy): Rule[] {
  return [...p.allow, ...p.deny].sort((a, b) => a.ref.span.start - b.ref.span.start);
}

/**
 * who → rule → destinations for the policy's rules in file order: who is
 * each user, group and forward source a rule names ("any local user" when it
 * names none), destinations are its `to` entries ("anywhere" when none).
 * Past PICTURE_LIMITS, the rest of a column is one "… N more" node.
 */
export function policyPicture(p: Policy, counters?: readonly RuleCounter[], limits = PICTURE_LIMITS): PolicyPicture {
  const all = rulesInOrder(p);
  const shown = all.slice(0, limits.rules);
  const packets = new Map<string, number>();
  for (const c of counters ?? []) if (c.action === 'allow' || c.action === 'deny') packets.set(c.rule, (packets.get(c.rule) ?? 0) + c.packets);
  const rules: PictureRule[] = shown.map((r, i) => {
    const service = [...(r.ports ?? []).map((x) => x.text), ...(r.icmp ?? []).map((x) => `icmp ${x.name}`)].join(', ');
    const except = r.except.map((e) => [...(e.to ?? []).map((x) => x.text), ...(e.ports ?? []).map((x) => x.text), ...(e.users ?? []).map((x) => `user ${x.text}`)].join(' ')).join('; ');
    const pr: PictureRule = { id: `r${i}`, name: r.ref.name, label: r.ref.name, action: r.ref.action };
    if (service) pr.service = service;
    if (r.reason) pr.reason = r.reason;
    if (except) pr.except = except;
    const n = packets.get(r.ref.name);
    if (n !== undefined) pr.packets = n;
    return pr;
  });
  // Per rule, its who and destination keys, in the order written.
  const whoOf = (r: Rule): { key: string; label: string; title: string }[] => {
    const out: { key: string; label: string; title: string }[] = [];
    for (const u of r.users ?? []) out.push({ key: `u:${u.text}`, label: `user ${u.text}`, title: `user ${u.text}${u.name !== undefined && u.id !== undefined ? ` (${u.name}, uid ${u.id})` : ''}` });
    for (const g of r.groups ?? []) out.push({ key: `g:${g.text}`, label: `group ${g.text}`, title: `group ${g.text}` });
    for (const f of r.from) if (f.name !== HOST_SOURCE) out.push({ key: `f:${f.name}`, label: `from ${f.name}`, title: `forwarded traffic from the source "${f.name}" (containers, VMs)` });
    const local = r.from.some((f) => f.name === HOST_SOURCE);
    if (local && !r.users?.length && !r.groups?.length) out.push({ key: 'any', label: 'any local user', title: 'every process of this host (the rule names no user or group)' });
    return out;
  };
  const destOf = (r: Rule): { key: string; label: string; title: string }[] =>
    r.to?.length
      ? r.to.map((d) => ({ key: `d:${d.kind}:${d.text}`, label: d.kind === 'set' ? `set ${d.name}` : d.text, title: d.kind === 'host' ? `hostname ${d.text} (its addresses, re-resolved by refresh)` : d.kind === 'set' ? `the set "${d.name}"` : d.kind === 'wildcard' ? `names matching ${d.text} (learned through the DNS forwarder)` : `addresses ${d.text}` }))
      : [{ key: 'anywhere', label: 'anywhere', title: 'any destination (the rule names no "to")' }];
  const column = (pick: (r: Rule) => { key: string; label: string; title: string }[], prefix: string, limit: number) => {
    // Each node placed at the mean index of its rules: few crossings for the usual policy.
    const seen = new Map<string, { label: string; title: string; rules: number[] }>();
    shown.forEach((r, i) => {
      for (const x of pick(r)) {
        const s = seen.get(x.key);
        if (s) s.rules.includes(i) || s.rules.push(i);
        else seen.set(x.key, { label: x.label, title: x.title, rules: [i] });
      }
    });
    const byFirst = [...seen].map(([key, v], order) => ({ key, ...v, order }));
    const kept = byFirst.slice(0, byFirst.length > limit ? limit - 1 : limit);
    const rest = byFirst.slice(kept.length);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    kept.sort((a, b) => mean(a.rules) - mean(b.rules) || a.order - b.order);
    const nodes: PictureNode[] = kept.map((k, i) => ({ id: `${prefix}${i}`, label: k.label, title: k.title }));
    const idOf = new Map(kept.map((k, i) => [k.key, `${prefix}${i}`]));
    if (rest.length) {
      const id = `${prefix}more`;
      nodes.push({ id, label: `… ${rest.length} more`, title: rest.slice(0, 20).map((r) => r.label).join('\n') + (rest.length > 20 ? `\n… and ${rest.length - 20} more` : '') });
      for (const r of rest) idOf.set(r.key, id);
    }
    return { nodes, idOf, hidden: rest.length };
  };
  const who = column(whoOf, 'w', limits.who);
  const dst = column(destOf, 'd', limits.destinations);
  const links: { from: string; to: string }[] = [];
  const seenLink = new Set<string>();
  const link = (from: string, to: string) => {
    const k = `${from} ${to}`;
    if (!seenLink.has(k)) {
      seenLink.add(k);
      links.push({ from, to });
    }
  };
  shown.forEach((r, i) => {
    for (const x of whoOf(r)) link(who.idOf.get(x.key)!, `r${i}`);
    for (const x of destOf(r)) link(`r${i}`, dst.idOf.get(x.key)!);
  });
  return { who: who.nodes, rules, destinations: dst.nodes, links, hiddenRules: all.length - shown.length, hiddenDestinations: dst.hidden };
}
