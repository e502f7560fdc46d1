/**
 * diff(live, want) → Plan: what loading `want` would change in what egress
 * owns. Pure and total. Chains are compared as sequences of rule keys (order
 * is meaning in a chain): rules only on one side are added or removed, and a
 * chain with the same rules in another order is reported as reordered. Sets
 * are compared by elements, so a hostname that moved shows as one element
 * out and one in.
 */
import type { Plan, RuleChange, SetChange } from './types.js';
import type { LiveRule, LiveRuleset } from '../backends/live.js';

export interface Settings {
  mode?: string;
  default?: string;
}

/**
 * `liveSettings`/`wantSettings` fill mode and default where the listing does
 * not carry them (iptables has no table comment; egress's state has them).
 */
export function diff(live: LiveRuleset, want: LiveRuleset, liveSettings: Settings = {}, wantSettings: Settings = {}): Plan {
  const plan: Plan = { backend: want.backend, rules: [], sets: [], objects: [], reordered: [] };
  if (!live.present && want.present) plan.table = 'create';
  if (live.present && !want.present) plan.table = 'remove';

  const lm = live.present ? live.mode ?? liveSettings.mode : undefined;
  const wm = want.present ? want.mode ?? wantSettings.mode : undefined;
  if (lm !== wm && (live.present || want.present)) plan.mode = { ...(lm ? { from: lm } : {}), ...(wm ? { to: wm } : {}) };
  const ld = live.present ? live.default ?? liveSettings.default : undefined;
  const wd = want.present ? want.default ?? wantSettings.default : undefined;
  if (ld !== wd && (live.present || want.present)) plan.default = { ...(ld ? { from: ld } : {}), ...(wd ? { to: wd } : {}) };

  for (const name of sortedUnion(live.chains.keys(), want.chains.keys())) {
    const a = live.chains.get(name);
    const b = want.chains.get(name);
    if (!a) plan.objects.push({ op: 'add', kind: 'chain', name });
    if (!b) plan.objects.push({ op: 'remove', kind: 'chain', name });
    const changes = diffRules(name, a ?? [], b ?? []);
    plan.rules.push(...changes);
    if (a && b && !changes.length && a.some((r, i) => r.key !== b[i]!.key)) plan.reordered.push(name);
  }

  for (const name of sortedUnion(live.sets.keys(), want.sets.keys())) {
    const a = live.sets.get(name);
    const b = want.sets.get(name);
    const ae = new Set(a?.elements ?? []);
    const be = new Set(b?.elements ?? []);
    const added = (b?.elements ?? []).filter((e) => !ae.has(e));
    const removed = (a?.elements ?? []).filter((e) => !be.has(e));
    const typeChanged = a && b && (a.type !== b.type || a.flags.join() !== b.flags.join());
    const op: SetChange['op'] = !a ? 'add' : !b ? 'remove' : 'change';
    if (op !== 'change' || added.length || removed.length || typeChanged) plan.sets.push({ name, op, added, removed });
  }

  for (const name of sortedUnion(live.counters.keys(), want.counters.keys())) {
    if (!live.counters.has(name)) plan.objects.push({ op: 'add', kind: 'counter', name });
    else if (!want.counters.has(name)) plan.objects.push({ op: 'remove', kind: 'counter', name });
  }

  if (live.jumps || want.jumps) {
    for (const f of ['ipv4', 'ipv6'] as const) {
      const a = live.jumps?.[f] ?? 0;
      const b = want.jumps?.[f] ?? 0;
      for (let i = b; i < a; i++) plan.objects.push({ op: 'remove', kind: 'jump', name: `${f}:OUTPUT -j EGRESS` });
      for (let i = a; i < b; i++) plan.objects.push({ op: 'add', kind: 'jump', name: `${f}:OUTPUT -j EGRESS` });
    }
  }
  return plan;
}

/** Whether applying would change anything at all. */
export function planIsEmpty(p: Plan): boolean {
  return !p.table && !p.mode && !p.default && !p.rules.length && !p.sets.length && !p.objects.length && !p.reordered.length;
}

/** How many changes a plan lists (set elements count one each). */
export function planSize(p: Plan): number {
  return (
    (p.mode ? 1 : 0) +
    (p.default ? 1 : 0) +
    p.rules.length +
    p.sets.reduce((n, s) => n + Math.max(1, s.added.length + s.removed.length), 0) +
    p.objects.length +
    p.reordered.length
  );
}

/** Multiset difference of two rule sequences, in the order each side lists them. */
function diffRules(chain: string, live: LiveRule[], want: LiveRule[]): RuleChange[] {
  const count = (rs: LiveRule[]) => {
    const m = new Map<string, number>();
    for (const r of rs) m.set(r.key, (m.get(r.key) ?? 0) + 1);
    return m;
  };
  const wantCount = count(want);
  const liveCount = count(live);
  const out: RuleChange[] = [];
  for (const r of live) {
    const n = wantCount.get(r.key) ?? 0;
    if (n > 0) wantCount.set(r.key, n - 1);
    else out.push(change('remove', chain, r));
  }
  for (const r of want) {
    const n = liveCount.get(r.key) ?? 0;
    if (n > 0) liveCount.set(r.key, n - 1);
    else out.push(change('add', chain, r));
  }
  return out;
}

function change(op: RuleChange['op'], chain: string, r: LiveRule): RuleChange {
  return { op, chain, text: r.text, ...(r.comment !== undefined ? { comment: r.comment } : {}) };
}

function sortedUnion(a: Iterable<string>, b: Iterable<string>): string[] {
  return [...new Set([...a, ...b])].sort();
}

/**
 * A canonical text of everything that defines a live ruleset (rules in
 * order, set elements, named counters, jumps; not counts, not handles).
 * Two listings with the same fingerprint load the same ruleset; egress
 * records it after each load to recognise later what is live.
 */
export function liveFingerprint(l: LiveRuleset): string {
  if (!l.present) return `${l.backend}:absent`;
  const chains = [...l.chains.keys()].sort().map((c) => [c, l.chains.get(c)!.map((r) => r.key)]);
  // What a dynamic set learned at run time is not part of the ruleset (see LiveSet.learned).
  const sets = [...l.sets.keys()].sort().map((s) => [s, { ...l.sets.get(s)!, learned: undefined }]);
  const counters = [...l.counters.keys()].sort();
  return JSON.stringify({ backend: l.backend, chains, sets, counters, jumps: l.jumps ?? null });
}
