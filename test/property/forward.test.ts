/**
 * The forward scope (SPEC §6) over random policies and flows: the reference
 * evaluator (SPEC read literally over the checked policy) and the linear and
 * indexed evaluators over the IR agree for forwarded flows and for the
 * host's own; a rule governs only the traffic its `from` names.
 */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { explainReference } from '../../src/sim/reference.js';
import { indexedEvaluator } from '../../src/sim/indexed.js';
import { linearEvaluator } from '../../src/sim/linear.js';
import { parseFlow } from '../../src/sim/flow-parse.js';
import { ACCOUNTS, loadText } from '../helpers.js';
import { flowArb, policyArb, policyYaml, type GenFlow, type GenPolicy, type GenSelectors } from './gen.js';

const SOURCES = `forward:
  sources:
    docker: { interfaces: ["docker0", "br-*"], networks: [198.51.100.0/25, "2001:db8:c1::/64"] }
    vms: { interfaces: [virbr0], networks: [192.0.2.64/26] }
    gitbox: { networks: [198.51.100.5] }
  default: DEFAULT
  unlisted: UNLISTED
`;
const FROMS = ['host', 'docker', 'vms', 'gitbox'];

interface GenForward {
  policy: GenPolicy;
  /** Per rule (allow then deny, by index): its from, or undefined = omitted. */
  from: (string[] | undefined)[];
  default: 'accept' | 'reject' | 'drop';
  unlisted: 'warn' | 'deny' | 'accept';
}

/** Owners cannot match forwarded packets: a rule governing a source has none (the policy would not load). */
const noOwner = (s: GenSelectors): GenSelectors => {
  const { user: _u, group: _g, ...rest } = s;
  return rest;
};

const forwardArb: fc.Arbitrary<GenForward> = fc
  .tuple(
    policyArb({ mode: true }),
    fc.array(fc.option(fc.uniqueArray(fc.constantFrom(...FROMS), { minLength: 1, maxLength: 3 }), { nil: undefined }), { minLength: 8, maxLength: 8 }),
    fc.constantFrom('accept' as const, 'reject' as const, 'drop' as const),
    fc.constantFrom('warn' as const, 'deny' as const, 'accept' as const),
  )
  .map(([p, froms, def, unlisted]) => {
    const rules = [...p.allow, ...p.deny];
    const from = rules.map((_, i) => froms[i]);
    const fix = (r: (typeof rules)[number], i: number) =>
      from[i]?.some((f) => f !== 'host') ? { ...noOwner(r), name: r.name, ...(r.except ? { except: r.except.map(noOwner) } : {}) } : r;
    return {
      policy: { ...p, allow: p.allow.map((r, i) => fix(r, i)), deny: p.deny.map((r, i) => fix(r, p.allow.length + i)) },
      from,
      default: def,
      unlisted,
    };
  });

function yaml(g: GenForward): string {
  const text = policyYaml(g.policy);
  const names = [...g.policy.allow, ...g.policy.deny].map((r) => r.name);
  // Insert each rule's from after its name line.
  let out = text;
  names.forEach((n, i) => {
    const f = g.from[i];
    if (f) out = out.replace(`  - name: ${n}\n`, `  - name: ${n}\n    from: [${f.join(', ')}]\n`);
  });
  return out.replace('version: 1\n', `version: 1\n${SOURCES.replace('DEFAULT', g.default).replace('UNLISTED', g.unlisted)}`);
}

interface FwdFlow extends GenFlow {
  src4: string;
  src6: string;
  in?: string;
  via?: string;
}

const fwdFlowArb: fc.Arbitrary<FwdFlow> = fc.record(
  {
    to: flowArb.map((f) => f.to),
    port: flowArb.map((f) => f.port),
    user: fc.constant('root'),
    src4: fc.constantFrom('198.51.100.5', '198.51.100.9', '198.51.100.200', '192.0.2.77', '192.0.2.10'),
    src6: fc.constantFrom('2001:db8:c1::5', '2001:db8:c9::1'),
    in: fc.constantFrom('docker0', 'br-x', 'virbr0', 'eth9'),
    via: fc.constantFrom('up0', 'docker0', 'br-y'),
  },
  { requiredKeys: ['to', 'port', 'user', 'src4', 'src6'] },
);

describe('forward scope: evaluators agree', () => {
  test('reference == linear == indexed, for forwarded flows and the host’s own', async () => {
    await fc.assert(
      fc.asyncProperty(forwardArb, fc.array(fwdFlowArb, { minLength: 1, maxLength: 12 }), async (g, flows) => {
        const text = yaml(g);
        const l = await loadText(text);
        const errors = l.diagnostics.filter((d) => d.severity === 'error');
        if (errors.length) throw new Error(`generated policy did not load: ${errors.map((e) => e.message).join('; ')}\n${text}`);
        const idx = indexedEvaluator(l.ir!);
        const lin = linearEvaluator(l.ir!);
        for (const x of flows) {
          const src = x.to.includes(':') ? x.src6 : x.src4;
          const fwd = parseFlow({ to: x.to, port: x.port, from: src, ...(x.in ? { in: x.in } : {}), ...(x.via ? { via: x.via } : {}) }, ACCOUNTS);
          const host = parseFlow({ to: x.to, port: x.port, user: x.user }, ACCOUNTS);
          for (const f of [fwd, host]) {
            const want = explainReference(l.resolved!, f);
            expect(lin(f)).toEqual(want);
            expect(idx(f)).toEqual(want);
          }
        }
      }),
      { numRuns: 200 },
    );
  });

  test('a rule decides only the traffic its from names', async () => {
    await fc.assert(
      fc.asyncProperty(forwardArb, fc.array(fwdFlowArb, { minLength: 1, maxLength: 8 }), async (g, flows) => {
        const l = await loadText(yaml(g));
        const idx = indexedEvaluator(l.ir!);
        const rules = [...g.policy.allow, ...g.policy.deny];
        const governsHost = new Set(rules.filter((_, i) => !g.from[i] || g.from[i]!.includes('host')).map((r) => r.name));
        const governsForward = new Set(rules.filter((_, i) => g.from[i]?.some((f) => f !== 'host')).map((r) => r.name));
        for (const x of flows) {
          for (const r of idx(parseFlow({ to: x.to, port: x.port, user: x.user }, ACCOUNTS)).rules) expect(governsHost.has(r.name)).toBe(true);
          const src = x.to.includes(':') ? x.src6 : x.src4;
          for (const r of idx(parseFlow({ to: x.to, port: x.port, from: src, ...(x.in ? { in: x.in } : {}) }, ACCOUNTS)).rules) expect(governsForward.has(r.name)).toBe(true);
        }
      }),
      { numRuns: 100 },
    );
  });
});
