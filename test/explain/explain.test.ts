/**
 * Explain tables: `<case>.flows` names a policy (and pinned hosts) and lists
 * one flow per line with the expected verdict and deciding rule(s):
 *   to=ADDR [port=P/N] [icmp=T] [user=U] [established=true] -> VERDICT [rule,...|builtin:NAME]
 * Each flow is answered by the indexed evaluator and the reference evaluator.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { loadPolicyText } from '../../src/index.js';
import { parseFlow, type FlowSpec } from '../../src/sim/flow-parse.js';
import { indexedEvaluator } from '../../src/sim/indexed.js';
import { explainReference } from '../../src/sim/reference.js';
import { ACCOUNTS, fixedResolver, NOW } from '../helpers.js';
import { ROOT } from '../paths.js';

const DIR = join(ROOT, 'test', 'explain');

for (const file of readdirSync(DIR).filter((f) => f.endsWith('.flows')).sort()) {
  const lines = readFileSync(join(DIR, file), 'utf8').split('\n');
  const policy = lines.find((l) => l.startsWith('policy: '))!.slice(8).trim();
  const hosts: Record<string, { ipv4: string[]; ipv6: string[] }> = {};
  for (const l of lines.filter((l) => l.startsWith('host '))) {
    const [name, addrs] = l.slice(5).split('=') as [string, string];
    const list = addrs.split(',');
    hosts[name] = { ipv4: list.filter((a) => !a.includes(':')), ipv6: list.filter((a) => a.includes(':')) };
  }
  const flows = lines.map((l, i) => ({ l, n: i + 1 })).filter(({ l }) => l.includes(' -> '));

  describe(file, async () => {
    const l = await loadPolicyText(policy, readFileSync(join(ROOT, policy), 'utf8'), { resolver: fixedResolver(hosts), now: NOW, baseDir: ROOT });
    const evaluate = indexedEvaluator(l.ir!);
    test.each(flows)('line $n: $l', ({ l: line }) => {
      const [lhs, rhs] = line.split(' -> ') as [string, string];
      const spec: FlowSpec = { to: '' };
      for (const kv of lhs.trim().split(/\s+/)) {
        const [k, v] = kv.split('=') as [string, string];
        if (k === 'established') spec.established = v === 'true';
        else (spec as unknown as Record<string, string>)[k] = v;
      }
      const [verdict, by] = rhs.trim().split(/\s+/);
      const f = parseFlow(spec, ACCOUNTS);
      const d = evaluate(f);
      expect(explainReference(l.resolved!, f)).toEqual(d);
      const decided = d.builtin ? `builtin:${d.builtin}` : d.rules.map((r) => r.name).join(',');
      expect([d.verdict, decided]).toEqual([verdict, by ?? '']);
    });
  });
}
