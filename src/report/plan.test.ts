/** The plan for people: summaries of big plans, --verbose, and the Markdown form for pull requests. */
import { describe, expect, test } from 'vitest';
import type { Plan } from '../plan/types.js';
import { PLAN_ROWS, SET_ELEMENTS, planSummary, renderPlanMarkdown, renderPlanText } from './plan.js';

const addrs = (n: number, base = 0) => Array.from({ length: n }, (_, i) => `198.51.${100 + Math.floor((base + i) / 256) % 100}.${(base + i) % 256}`);

function bigPlan(): Plan {
  return {
    backend: 'nft',
    mode: { from: 'audit', to: 'enforce' },
    rules: Array.from({ length: 100 }, (_, i) => ({ op: i % 4 ? 'add' : 'remove', chain: 'output', text: `ip daddr 192.0.2.${i} tcp dport 443 accept comment "r${i}: why"` }) as const),
    sets: [
      { name: 'allow_web_v4_hosts', op: 'change', added: addrs(10_000), removed: addrs(3, 20_000) },
      { name: 'allow_new_v6', op: 'add', added: ['2001:db8::1'], removed: [] },
    ],
    objects: [{ op: 'add', kind: 'chain', name: 'fwd' }],
    reordered: [],
  };
}

describe('plan text', () => {
  test('a big plan is summarised: the first elements of a set and "… N more", the first rows and "… N more changes", the counts per kind last', () => {
    const text = renderPlanText(bigPlan());
    expect(text.length).toBeLessThan(12_000); // 10,003 set elements and 100 rules, in a page or two
    expect(text).toContain(`… ${10_003 - SET_ELEMENTS} more (+10000 -3)`);
    expect(text).toContain(`… ${103 - PLAN_ROWS} more changes (--verbose shows every one)`);
    expect(text).toContain('mode: audit -> enforce');
    expect(text.trimEnd().split('\n').at(-1)).toBe('10,106 changes pending: rules +75 -25, sets +1 ~1, elements +10,001 -3, chains +1, mode');
  });

  test('--verbose keeps every element and every row', () => {
    const p = bigPlan();
    const text = renderPlanText(p, { verbose: true });
    for (const a of [...p.sets[0]!.added, ...p.sets[0]!.removed]) expect(text).toContain(a);
    for (const r of p.rules) expect(text).toContain(r.text);
    expect(text).not.toContain('more');
  });

  test('a small plan is shown whole, with no "more"', () => {
    const p: Plan = { backend: 'iptables', rules: [{ op: 'add', chain: 'EGRESS', text: '-d 192.0.2.1/32 -j ACCEPT' }], sets: [], objects: [], reordered: [] };
    const text = renderPlanText(p);
    expect(text).toContain('+rule   EGRESS  -d 192.0.2.1/32 -j ACCEPT');
    expect(text).not.toContain('more');
    expect(planSummary(p)).toBe('1 change pending: rules +1');
  });
});

describe('plan --markdown', () => {
  test('a heading with the file and backend, the summary in bold, the changes in a diff block (+, -, ! for a changed set)', () => {
    const md = renderPlanMarkdown(bigPlan(), '/etc/egress/policy.yaml');
    const lines = md.split('\n');
    expect(lines[0]).toBe('### egress plan: `/etc/egress/policy.yaml` (nft)');
    expect(md).toContain('**10,106 changes pending: rules +75 -25');
    expect(md).toContain('- `mode: audit -> enforce`');
    const start = lines.indexOf('```diff');
    const end = lines.indexOf('```', start + 1);
    expect(start).toBeGreaterThan(0);
    const body = lines.slice(start + 1, end);
    expect(body[0]).toBe('+ chain   fwd');
    expect(body[1]).toMatch(/^! set {5}allow_web_v4_hosts {2}\+198\.51\.100\.0 /);
    expect(body.filter((l) => l.startsWith('- rule'))).toHaveLength(Math.ceil((PLAN_ROWS - 3) / 4)) // 1 chain and 2 sets, then rules; every 4th removes;
    expect(body.at(-1)).toContain(`… ${103 - PLAN_ROWS} more changes`);
  });

  test('policy text cannot close the fence or the code span: both get more backticks than it holds', () => {
    const p: Plan = { backend: 'nft', rules: [{ op: 'add', chain: 'output', text: 'accept comment "x: ``` </details> **bold**"' }], sets: [], objects: [], reordered: [] };
    const md = renderPlanMarkdown(p, 'we`ird.yaml');
    expect(md.split('\n')[0]).toBe('### egress plan: ``we`ird.yaml`` (nft)');
    expect(md).toContain('````diff\n+ rule    output  accept comment "x: ``` </details> **bold**"\n````');
  });

  test('nothing to change', () => {
    expect(renderPlanMarkdown({ backend: 'nft', rules: [], sets: [], objects: [], reordered: [] }, 'p.yaml')).toBe('### egress plan: `p.yaml` (nft)\n\nNo changes: the live table inet egress already matches the policy.\n');
  });
});
