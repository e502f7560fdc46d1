/**
 * Lint finds the rules that could cover an allow rule by asking, for one
 * address per allow rule, which rules contain it (`rulesAtPoints`). That
 * must be exactly the plain definition: every rule of the family whose
 * destinations hold the point, and every rule of the family without
 * destinations, in rule order.
 */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { rulesAtPoints } from '../../src/lint/lint.js';
import { parseAddress, FAMILIES } from '../../src/policy/address.js';
import type { IrRule } from '../../src/ir/types.js';
import { loadText } from '../helpers.js';
import { ADDRS4, ADDRS6, policyArb, policyYaml } from './gen.js';

const plain = (rules: readonly IrRule[], family: string, p: bigint) => rules.filter((r) => r.family === family && (!r.dst || r.dst.some((x) => x.lo <= p && p <= x.hi)));

/** Points on and beside every interval boundary of the policy, and the generator's addresses. */
function pointsOf(rules: readonly IrRule[], family: string): bigint[] {
  const out = (family === 'ipv4' ? ADDRS4 : ADDRS6).map((a) => parseAddress(a)!.value);
  for (const r of rules) if (r.family === family) for (const x of r.dst ?? []) out.push(x.lo, x.hi, x.lo - 1n, x.hi + 1n);
  return out.filter((p) => p >= 0n);
}

describe('rulesAtPoints', () => {
  test('equals the plain definition for every point of random policies, repeated points and none included', async () => {
    await fc.assert(
      fc.asyncProperty(policyArb(), fc.integer({ min: 0, max: 1000 }), async (p, seed) => {
        const l = await loadText(policyYaml(p));
        const rules = l.ir!.rules;
        for (const family of FAMILIES) {
          const points = pointsOf(rules, family);
          // Rotated, reversed and with a repeat: the answer follows the order asked, not the sorted one.
          const k = seed % points.length;
          const asked = [...points.slice(k), ...points.slice(0, k)].reverse().concat(points[k]!);
          expect(rulesAtPoints(rules, family, asked)).toEqual(asked.map((x) => plain(rules, family, x)));
          expect(rulesAtPoints(rules, family, [])).toEqual([]);
        }
      }),
      { numRuns: 300 },
    );
  });

  test('a rule with overlapping intervals is listed once per point', () => {
    const r = { family: 'ipv4', dst: [{ lo: 10n, hi: 20n }, { lo: 15n, hi: 30n }] } as unknown as IrRule;
    expect(rulesAtPoints([r], 'ipv4', [16n, 25n, 31n])).toEqual([[r], [r], []]);
  });
});
