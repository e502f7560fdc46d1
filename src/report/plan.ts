/**
 * A Plan for people (an aligned table), for pull requests (`--markdown`)
 * and for CI (`--json`). Pure.
 *
 * Big plans are summarised unless `verbose`: a set change lists its first
 * SET_ELEMENTS elements and "… N more", the table its first PLAN_ROWS rows
 * and "… N more changes" (a 100k-destination policy printed 2.8 MB in 34
 * lines). The last line always counts the changes per kind; `--json` and
 * `--verbose` keep every element.
 */
import { planIsEmpty, planSize } from '../plan/diff.js';
import type { ObjectChange, Plan, RuleChange, SetChange, SettingChange } from '../plan/types.js';
import { colourDiffRows } from '../diag/colour.js';
import { table } from './table.js';

const OWNED: Record<Plan['backend'], string> = { nft: 'table inet egress', iptables: 'chains EGRESS* (iptables and ip6tables)' };

/** Elements shown per set change, and rows in the table, before "… N more" (unless verbose). */
export const SET_ELEMENTS = 8;
export const PLAN_ROWS = 60;

export interface PlanTextOptions {
  /** Every element and every row, however many. */
  verbose?: boolean;
  /** Rows coloured by their change: + green, - red, ~ yellow (a terminal; diag/colour.ts). */
  colour?: boolean;
  /** The terminal's width: the table is cut to fit it (-v or --json for every character). */
  width?: number;
}

interface Row {
  change: string;
  where: string;
  what: string;
}

/** The changes as rows, in plan order: objects, sets, rules, reorders. */
function rows(p: Plan, verbose: boolean): Row[] {
  const out: Row[] = [];
  for (const o of p.objects) out.push({ change: `${sign(o.op)}${o.kind}`, where: o.name, what: '' });
  for (const s of p.sets) out.push({ change: `${s.op === 'add' ? '+' : s.op === 'remove' ? '-' : '~'}set`, where: s.name, what: setWhat(s, verbose) });
  for (const r of p.rules) out.push({ change: `${sign(r.op)}rule`, where: r.chain, what: r.text });
  for (const c of p.reordered) out.push({ change: '~order', where: c, what: 'same rules, another order' });
  return out;
}

function setWhat(s: SetChange, verbose: boolean): string {
  const els = s.op === 'add' ? s.added : s.op === 'remove' ? s.removed : [...s.added.map((e) => `+${e}`), ...s.removed.map((e) => `-${e}`)];
  if (!els.length) return s.op === 'change' ? '(type or flags)' : '(empty)';
  const shown = verbose ? els : els.slice(0, SET_ELEMENTS);
  const more = els.length - shown.length;
  return shown.join(' ') + (more ? ` … ${more} more (${s.op === 'change' ? `+${s.added.length} -${s.removed.length}` : `${els.length} in all`})` : '');
}

/** "12 changes pending: rules +3 -1, sets +1 ~2 (elements +9,998 -4), chains +1". */
export function planSummary(p: Plan, pending = 'pending'): string {
  const n = planSize(p);
  const parts: string[] = [];
  const count = <T>(xs: T[], f: (x: T) => boolean) => xs.filter(f).length;
  const signed = (label: string, add: number, remove: number, change = 0) => {
    const bits = [add ? `+${add}` : '', remove ? `-${remove}` : '', change ? `~${change}` : ''].filter(Boolean);
    if (bits.length) parts.push(`${label} ${bits.join(' ')}`);
  };
  signed('rules', count(p.rules, (r) => r.op === 'add'), count(p.rules, (r) => r.op === 'remove'));
  const added = p.sets.reduce((a, s) => a + s.added.length, 0);
  const removed = p.sets.reduce((a, s) => a + s.removed.length, 0);
  signed('sets', count(p.sets, (s) => s.op === 'add'), count(p.sets, (s) => s.op === 'remove'), count(p.sets, (s) => s.op === 'change'));
  if (added || removed) parts.push(`elements ${[added ? `+${added.toLocaleString('en-US')}` : '', removed ? `-${removed.toLocaleString('en-US')}` : ''].filter(Boolean).join(' ')}`);
  for (const kind of ['chain', 'counter', 'jump', 'backend'] as const) signed(`${kind}s`, count(p.objects, (o) => o.kind === kind && o.op === 'add'), count(p.objects, (o) => o.kind === kind && o.op === 'remove'));
  if (p.reordered.length) parts.push(`reordered chains ${p.reordered.length}`);
  if (p.mode) parts.push('mode');
  if (p.default) parts.push('default');
  return `${n.toLocaleString('en-US')} change${n === 1 ? '' : 's'} ${pending}${parts.length ? `: ${parts.join(', ')}` : ''}`;
}

/** The settings that change as one line each ("mode: audit -> enforce"). */
function headLines(p: Plan): string[] {
  const lines: string[] = [];
  if (p.table === 'create') lines.push(`${OWNED[p.backend]} is not live: it would be created`);
  if (p.table === 'remove') lines.push(`${OWNED[p.backend]} would be taken out`);
  if (p.mode) lines.push(`mode: ${p.mode.from ?? '(none)'} -> ${p.mode.to ?? '(none)'}`);
  if (p.default) lines.push(`default: ${p.default.from ?? '(none)'} -> ${p.default.to ?? '(none)'}`);
  return lines;
}

export function renderPlanText(p: Plan, opts: PlanTextOptions = {}): string {
  if (planIsEmpty(p)) return `no changes: the live ${OWNED[p.backend]} already matches the policy\n`;
  const verbose = !!opts.verbose;
  const lines = headLines(p);
  const all = rows(p, verbose);
  const shown = verbose ? all : all.slice(0, PLAN_ROWS);
  if (shown.length)
    lines.push(
      '',
      colourDiffRows(
        table(
          ['change', 'where', 'what'],
          shown.map((r) => [r.change, r.where, r.what]),
          opts.width !== undefined ? { width: opts.width } : {},
        ).trimEnd(),
        !!opts.colour,
      ),
    );
  if (shown.length < all.length) lines.push(`… ${all.length - shown.length} more changes (--verbose shows every one)`);
  lines.push('', planSummary(p));
  return lines.join('\n') + '\n';
}

/**
 * The plan as Markdown for a pull request: a heading, the summary, and the
 * changes in a ```diff block (GitHub and GitLab colour its + and - lines),
 * big sets summarised as in the text form. Policy text reaches it only
 * inside code spans and the fenced block, each fenced by more backticks
 * than it contains.
 */
export function renderPlanMarkdown(p: Plan, file: string, opts: PlanTextOptions = {}): string {
  const out = [`### egress plan: ${codeSpan(file)} (${p.backend})`, ''];
  if (planIsEmpty(p)) return [...out, `No changes: the live ${OWNED[p.backend]} already matches the policy.`, ''].join('\n');
  out.push(`**${planSummary(p)}**`, '');
  const heads = headLines(p);
  for (const l of heads) out.push(`- ${codeSpan(l)}`);
  if (heads.length) out.push('');
  const verbose = !!opts.verbose;
  const all = rows(p, verbose);
  const shown = verbose ? all : all.slice(0, PLAN_ROWS);
  const body = shown.map((r) => `${r.change[0] === '~' ? '!' : r.change[0]} ${r.change.slice(1).padEnd(7)} ${r.where}${r.what ? `  ${r.what}` : ''}`);
  if (shown.length < all.length) body.push(`  … ${all.length - shown.length} more changes (egress plan --markdown --verbose shows every one)`);
  const fence = '`'.repeat(Math.max(3, longestRun(body.join('\n')) + 1));
  out.push(`${fence}diff`, ...body, fence, '');
  return out.join('\n');
}

function codeSpan(s: string): string {
  const ticks = '`'.repeat(longestRun(s) + 1);
  const pad = s.startsWith('`') || s.endsWith('`') ? ' ' : '';
  return `${ticks}${pad}${s.replace(/\n/g, ' ')}${pad}${ticks}`;
}

function longestRun(s: string): number {
  let best = 0;
  for (const m of s.matchAll(/`+/g)) best = Math.max(best, m[0].length);
  return best;
}

function sign(op: 'add' | 'remove'): string {
  return op === 'add' ? '+' : '-';
}

/** `plan --json`: stable field names, lists always present; `null` where the plan has no such change. */
export interface PlanJson {
  /** Anything to change at all. */
  changes: boolean;
  /** How many changes (planSize). */
  count: number;
  backend: Plan['backend'];
  /** Whether egress's table (nft) / chains (iptables) would be created or taken out as a whole. */
  table: 'create' | 'remove' | null;
  mode: SettingChange | null;
  default: SettingChange | null;
  rules: RuleChange[];
  sets: SetChange[];
  objects: ObjectChange[];
  /** Chains whose rules stay the same but whose order changes. */
  reordered: string[];
}

/** The `--json` form: stable field names, lists always present. */
export function planJson(p: Plan): PlanJson {
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
