/** A Plan for people (an aligned table) and for CI (`--json`). Pure. */
import { planIsEmpty, planSize } from '../plan/diff.js';
import type { Plan } from '../plan/types.js';
import { table } from './table.js';

const OWNED: Record<Plan['backend'], string> = { nft: 'table inet egress', iptables: 'chains EGRESS* (iptables and ip6tables)' };

export function renderPlanText(p: Plan): string {
  if (planIsEmpty(p)) return `no changes: the live ${OWNED[p.backend]} already matches the policy\n`;
  const lines: string[] = [];
  if (p.table === 'create') lines.push(`${OWNED[p.backend]} is not live: it would be created`);
  if (p.table === 'remove') lines.push(`${OWNED[p.backend]} would be taken out`);
  if (p.mode) lines.push(`mode: ${p.mode.from ?? '(none)'} -> ${p.mode.to ?? '(none)'}`);
  if (p.default) lines.push(`default: ${p.default.from ?? '(none)'} -> ${p.default.to ?? '(none)'}`);
  const rows: string[][] = [];
  for (const o of p.objects) rows.push([`${sign(o.op)}${o.kind}`, o.name, '']);
  for (const s of p.sets) {
    if (s.op === 'add') rows.push(['+set', s.name, s.added.join(' ') || '(empty)']);
    else if (s.op === 'remove') rows.push(['-set', s.name, s.removed.join(' ') || '(empty)']);
    else rows.push(['~set', s.name, [...s.added.map((e) => `+${e}`), ...s.removed.map((e) => `-${e}`)].join(' ') || '(type or flags)']);
  }
  for (const r of p.rules) rows.push([`${sign(r.op)}rule`, r.chain, r.text]);
  for (const c of p.reordered) rows.push(['~order', c, 'same rules, another order']);
  if (rows.length) lines.push('', table(['change', 'where', 'what'], rows).trimEnd());
  const n = planSize(p);
  lines.push('', `${n} change${n === 1 ? '' : 's'} pending`);
  return lines.join('\n') + '\n';
}

function sign(op: 'add' | 'remove'): string {
  return op === 'add' ? '+' : '-';
}

/** The `--json` form: stable field names, lists always present. */
export function planJson(p: Plan) {
  return {
    changes: !planIsEmpty(p),
    count: planSize(p),
    backend: p.backend,
    table: p.table ?? null,
    mode: p.mode ?? null,
    default: p.default ?? null,
    rules: p.rules,
    sets: p.sets,
    objects: p.objects,
    reordered: p.reordered,
  };
}

