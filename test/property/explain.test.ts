/**
 * Properties of the model and evaluators over random policies and flows:
 * the reference evaluator (policy semantics), the linear and the indexed
 * evaluators over the IR all agree; order in the file never matters; adding
 * an allow never turns an accept into a deny.
 */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { printIr } from '../../src/ir/print.js';
import { explainReference } from '../../src/sim/reference.js';
import { indexedEvaluator } from '../../src/sim/indexed.js';
import { linearEvaluator } from '../../src/sim/linear.js';
import { parseFlow } from '../../src/sim/flow-parse.js';
import { ACCOUNTS, loadText } from '../helpers.js';
import { withAnswer, withAnswerReference } from '../../src/sim/dns.js';
import { examples, flowArb, LOOKUPS, policyArb, policyYaml, type Example, type GenFlow, type GenPolicy } from './gen.js';

async function load(p: GenPolicy) {
  const l = await loadText(policyYaml(p));
  const errors = l.diagnostics.filter((d) => d.severity === 'error');
  if (errors.length) throw new Error(`generated policy did not load: ${errors.map((e) => e.message).join('; ')}\n${policyYaml(p)}`);
  return l;
}

const RUNS = 300;

const policy = (p: Partial<GenPolicy>): GenPolicy => ({ mode: 'enforce', default: 'accept', allow: [], deny: [], ...p });
const flow = (to: string, port: string, user: string): GenFlow => ({ to, port, user });

/** Shrunk counterexamples of "reference == linear == indexed" (see gen.ts `Example`). */
const AGREE: Example<[GenPolicy, GenFlow[]]>[] = [
  // Caught: the indexed evaluator's sweep closed each destination interval one
  // address early (`at: x.hi` for `x.hi + 1n`), so a single address matched nothing.
  { name: 'a deny of one address', args: [policy({ deny: [{ name: 'd0', to: ['192.0.2.1'] }] }), [flow('192.0.2.1', 'tcp/22', 'root')]] },
  // Caught: the indexed evaluator not skipping a deny whose except matched.
  { name: 'a deny whose except matches everything', args: [policy({ deny: [{ name: 'd0', except: [{}] }] }), [flow('192.0.2.1', 'udp/53', 'root')]] },
  // Caught: restMatches (ir-match.ts) ignoring the user selector, in the linear evaluator and in except matching.
  {
    name: 'an allow for one user',
    args: [policy({ allow: [{ name: 'a0', user: ['root'] }] }), [flow('192.0.2.1', 'tcp/22', 'postfix'), flow('192.0.2.1', 'tcp/22', 'root')]],
  },
  // Caught: the indexed port table leaving a range's first port out (`a < lo`), so a whole-protocol rule without destinations never matched.
  { name: 'a whole-protocol allow without destinations', args: [policy({ allow: [{ name: 'a0', ports: ['udp'] }] }), [flow('192.0.2.1', 'udp/53', 'root')]] },
  // Caught: lower.ts merging a rule's destination intervals without sorting them first.
  { name: 'two destinations out of order', args: [policy({ allow: [{ name: 'a0', to: ['198.51.100.7', '192.0.2.1'] }] }), [flow('192.0.2.1', 'udp/53', 'root')]] },
  // Exercises: both ends of a CIDR and a port range, the first address past them, an except by user, audit mode, both families.
  {
    name: 'range ends, except by user, audit, both families',
    args: [
      policy({
        mode: 'audit',
        default: 'drop',
        allow: [{ name: 'a0', to: ['192.0.2.0/30'], ports: ['tcp/80-81'], user: ['www-data'] }],
        deny: [{ name: 'd0', to: ['2001:db8::/126'], ports: ['udp'], except: [{ user: ['postfix'] }] }],
      }),
      [
        flow('192.0.2.0', 'tcp/80', 'www-data'),
        flow('192.0.2.3', 'tcp/81', 'www-data'),
        flow('192.0.2.4', 'tcp/81', 'www-data'),
        flow('192.0.2.3', 'tcp/443', 'www-data'),
        flow('2001:db8::3', 'udp/53', 'postfix'),
        flow('2001:db8::3', 'udp/53', 'root'),
        flow('2001:db8::4', 'udp/53', 'root'),
      ],
    ],
  },
];

/** Shrunk counterexamples of order independence: a policy and the shuffle seed. */
const ORDER: Example<[GenPolicy, number]>[] = [
  // Caught: lower.ts keeping the file's order of deny rules instead of sorting them by name.
  { name: 'two denies, shuffled', args: [policy({ deny: [{ name: 'd0' }, { name: 'd1' }] }), 0] },
  // Exercises: allows and denies shuffled together, with excepts and both families.
  {
    name: 'three allows and three denies',
    args: [
      policy({
        allow: [{ name: 'a0', to: ['192.0.2.1'] }, { name: 'a1', ports: ['tcp/443'] }, { name: 'a2', family: 'ipv6' }],
        deny: [{ name: 'd0', user: ['postfix'] }, { name: 'd1', to: ['2001:db8::/32'], except: [{ ports: ['udp/53'] }] }, { name: 'd2', ports: ['tcp/25'] }],
      }),
      7,
    ],
  },
];

/** Shrunk counterexamples of monotonicity: a policy, the policy whose allows are added, and flows. */
const MONOTONE: Example<[GenPolicy, GenPolicy, GenFlow[]]>[] = [
  // Caught: the indexed port table leaving out the rules without an L4 selector
  // once any rule without destinations named ports: "allow everything" stopped
  // matching tcp/22 when an allow for tcp/25 was added.
  {
    name: 'allow everything, then add an allow with ports',
    args: [policy({ default: 'drop', allow: [{ name: 'a0' }] }), policy({ allow: [{ name: 'a0', ports: ['tcp/25'] }] }), [flow('192.0.2.1', 'tcp/22', 'root')]],
  },
];

describe('evaluators agree', () => {
  test('reference == linear == indexed, for every flow', async () => {
    await fc.assert(
      fc.asyncProperty(policyArb({ mode: true }), fc.array(flowArb, { minLength: 1, maxLength: 20 }), async (p, flows) => {
        const l = await load(p);
        const idx = indexedEvaluator(l.ir!);
        const lin = linearEvaluator(l.ir!);
        for (const g of flows) {
          const f = parseFlow(g, ACCOUNTS);
          const want = explainReference(l.resolved!, f);
          expect(lin(f)).toEqual(want);
          expect(idx(f)).toEqual(want);
        }
      }),
      { numRuns: RUNS, examples: examples(AGREE) },
    );
  });
});

describe('order independence (SPEC §2)', () => {
  test('shuffling allow and deny rules changes no verdict and no IR byte', async () => {
    await fc.assert(
      fc.asyncProperty(policyArb(), fc.integer(), async (p, seed) => {
        const shuffled: GenPolicy = { ...p, allow: shuffle(p.allow, seed), deny: shuffle(p.deny, seed + 1) };
        const [a, b] = [await load(p), await load(shuffled)];
        // Spans differ with position; compare the dump, which carries no offsets.
        expect(printIr(b.ir!)).toBe(printIr(a.ir!));
      }),
      { numRuns: RUNS, examples: examples(ORDER) },
    );
  });
});

describe('monotonicity', () => {
  test('adding an allow rule never turns an accept into a deny', async () => {
    await fc.assert(
      fc.asyncProperty(policyArb(), policyArb(), fc.array(flowArb, { minLength: 1, maxLength: 10 }), async (p, extra, flows) => {
        const more: GenPolicy = { ...p, allow: [...p.allow, ...extra.allow.map((r) => ({ ...r, name: `x${r.name}` }))] };
        const [a, b] = [await load(p), await load(more)];
        const ea = indexedEvaluator(a.ir!);
        const eb = indexedEvaluator(b.ir!);
        for (const g of flows) {
          const f = parseFlow(g, ACCOUNTS);
          if (ea(f).verdict === 'accept') expect(eb(f).verdict).toBe('accept');
        }
      }),
      { numRuns: RUNS, examples: examples(MONOTONE) },
    );
  });
});

function shuffle<T>(xs: T[], seed: number): T[] {
  const out = [...xs];
  let s = seed >>> 0 || 1;
  for (let i = out.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

describe('names that follow DNS (dns.proxy)', () => {
  test('reference == linear == indexed with every dynamic set empty, and with an answer published', async () => {
    await fc.assert(
      fc.asyncProperty(
        policyArb({ mode: true, dns: true }),
        fc.array(flowArb, { minLength: 1, maxLength: 12 }),
        fc.constantFrom(...LOOKUPS),
        async (p, flows, name) => {
          const l = await load(p);
          const idx = indexedEvaluator(l.ir!);
          const lin = linearEvaluator(l.ir!);
          // The forwarder answers `name` with the addresses the flows go to.
          const answered = flows.map((g) => parseFlow(g, ACCOUNTS)).map((f) => ({ family: f.family, value: f.dst }));
          const ir2 = withAnswer(l.ir!, name, answered);
          const ref2 = withAnswerReference(l.resolved!, name, answered);
          const idx2 = indexedEvaluator(ir2);
          const lin2 = linearEvaluator(ir2);
          for (const g of flows) {
            const f = parseFlow(g, ACCOUNTS);
            const want = explainReference(l.resolved!, f);
            expect(lin(f)).toEqual(want);
            expect(idx(f)).toEqual(want);
            const want2 = explainReference(ref2, f);
            expect(lin2(f)).toEqual(want2);
            expect(idx2(f)).toEqual(want2);
          }
        },
      ),
      { numRuns: RUNS },
    );
  });
});
