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
import { flowArb, LOOKUPS, policyArb, policyYaml, type GenPolicy } from './gen.js';

async function load(p: GenPolicy) {
  const l = await loadText(policyYaml(p));
  const errors = l.diagnostics.filter((d) => d.severity === 'error');
  if (errors.length) throw new Error(`generated policy did not load: ${errors.map((e) => e.message).join('; ')}\n${policyYaml(p)}`);
  return l;
}

const RUNS = 300;

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
      { numRuns: RUNS },
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
      { numRuns: RUNS },
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
      { numRuns: RUNS },
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
