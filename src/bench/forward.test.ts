import { describe, expect, test } from 'vitest';
import { compilePolicy } from '../index.js';
import { forwardPolicyText } from './forward.js';
import { benchAddress, loadBenchPolicy } from './kernel.js';

const dests = Array.from({ length: 5 }, (_, k) => benchAddress(k));
const files = { '/bench/dests.txt': dests.join('\n') + '\n' };
const target = dests[4]!;

describe('forward bench policy', () => {
  test('with the forward scope: every rule is the source\'s, none the host\'s; extra rules sort before the load\'s', async () => {
    const { ir } = await loadBenchPolicy(forwardPolicyText(target, true, 3), files);
    expect(ir.rules).toEqual([]);
    const names = ir.forward!.rules.map((r) => `${r.origin.action} ${r.origin.name} ${r.family}`);
    expect(names).toContain('allow many ipv6');
    expect(names).toContain('allow ping ipv6');
    expect(names).toContain('deny blocked ipv6');
    const allows = ir.forward!.rules.filter((r) => r.origin.action === 'allow' && r.family === 'ipv6').map((r) => r.origin.name);
    expect(allows.indexOf('a002')).toBeLessThan(allows.indexOf('many'));
    expect(ir.forward!.rules.every((r) => r.from?.includes('clients'))).toBe(true);
  });

  test('with the forward scope off: the same rules, the host\'s own', async () => {
    const { ir } = await loadBenchPolicy(forwardPolicyText(target, false), files);
    expect(ir.forward).toBeUndefined();
    expect(ir.rules.map((r) => r.origin.name).sort()).toEqual(['blocked', 'blocked', 'many', 'ping']);
  });
});
