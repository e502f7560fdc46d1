/**
 * Differential (STYLE property 1, for this target): over random policies,
 * the FW_RULE list under the documented CE rule interaction — a matching
 * allow overrides the blocks, otherwise any matching block drops, otherwise
 * the packet passes — gives exactly the verdict the reference evaluator
 * gives. And no allow we emit overlaps a block that came from a deny, so the
 * undocumented case (a block meant to win over an allow) never arises.
 */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { ACCOUNTS, loadText } from '../../../test/helpers.js';
import { flowArb, policyArb, policyYaml, type GenPolicy, type GenSelectors } from '../../../test/property/gen.js';
import { parseFlow } from '../../sim/flow-parse.js';
import type { Flow } from '../../sim/flow.js';
import { explainReference } from '../../sim/reference.js';
import { bitsOf, type FwRule } from './fw-rule.js';
import { emitFwRules } from './fw-rules.js';

const HOST = '192.0.2.101,2001:db8::101';
const PROTO: Record<string, number> = { tcp: 6, udp: 17, sctp: 132 };

function fwMatches(r: FwRule, f: Flow): boolean {
  if (r.privateHost.family !== f.family) return false;
  if (r.publicHost) {
    const size = 1n << BigInt(bitsOf(f.family) - r.publicHost.prefix);
    if (f.dst < r.publicHost.value || f.dst >= r.publicHost.value + size) return false;
  }
  if (r.protocol !== undefined && r.protocol !== PROTO[f.proto]) return false;
  if (r.ports && (f.port === undefined || f.port < r.ports[0] || f.port > r.ports[1])) return false;
  return r.icmpType === undefined;
}

/** Users are not expressible on CE: keep the generated policies to what it can take. */
function noUsers<T extends GenSelectors>(s: T): Omit<T, 'user'> {
  const { user: _u, ...rest } = s;
  return rest;
}

describe('CE rule interaction reproduces the policy', () => {
  test('verdicts equal the reference evaluator; allows never overlap deny blocks', async () => {
    let compiled = 0;
    await fc.assert(
      fc.asyncProperty(policyArb(), fc.array(flowArb, { minLength: 1, maxLength: 25 }), async (g, flows) => {
        const p: GenPolicy = {
          ...g,
          allow: g.allow.map(noUsers),
          deny: g.deny.map((r) => ({ ...noUsers(r), ...(r.except ? { except: r.except.map(noUsers) } : {}) })),
        };
        const l = await loadText(policyYaml(p));
        expect(l.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
        const plan = emitFwRules(l.ir!, { host: HOST }, 'wince');
        if (!plan.value) {
          // Refusals are fine (that is the point), but only for the documented reasons.
          for (const d of plan.diagnostics) expect(d.message).toMatch(/selector "(except|ports|icmp)"/);
          return;
        }
        compiled++;
        const rules = plan.value.rules.filter((r) => r.kind !== 'log');
        for (const gf of flows) {
          const f = parseFlow(gf, ACCOUNTS);
          const allow = rules.some((r) => r.kind === 'allow' && fwMatches(r, f));
          const denyBlock = rules.some((r) => r.kind === 'block' && r.origin && fwMatches(r, f));
          const block = rules.some((r) => r.kind === 'block' && fwMatches(r, f));
          expect(allow && denyBlock, `${gf.to} ${gf.port}\n${policyYaml(p)}`).toBe(false);
          const ce = allow || !block ? 'accept' : 'blocked';
          const want = explainReference(l.resolved!, f).verdict === 'accept' ? 'accept' : 'blocked';
          expect(ce, `${gf.to} ${gf.port}\n${policyYaml(p)}`).toBe(want);
        }
      }),
      { numRuns: 400 },
    );
    expect(compiled).toBeGreaterThan(100);
  });
});
