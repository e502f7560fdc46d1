/**
 * Issue 13: the iptables backend's linear chain is said plainly where an
 * operator meets it. `compile --target iptables` (and plan and apply on
 * iptables, which compile the same way) warn `iptables-linear` with the rule
 * count from 1,000 rules on; `check` notes what many destinations cost on
 * each backend. Small policies hear nothing of it.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { tempDir } from '../helpers.js';
import { envelope, resultOf } from '../json.js';
import { run } from './run.js';

/** A policy of `n` separate IPv4 and `n` IPv6 addresses (none adjacent, so none merge) on tcp/443. */
function policyOf(n: number): string {
  const dir = tempDir('egress-ipt-cost-');
  const v4 = Array.from({ length: n }, (_, k) => `10.${(k >> 7) & 255}.${(k & 127) * 2}.1`);
  const v6 = Array.from({ length: n }, (_, k) => `2001:db8:${k.toString(16)}::1`);
  writeFileSync(join(dir, 'dests.txt'), [...v4, ...v6].join('\n') + '\n');
  writeFileSync(join(dir, 'p.yaml'), 'version: 1\nsets:\n  many: { file: dests.txt }\nallow:\n  - name: many\n    reason: r\n    to: [$many]\n    ports: [tcp/443]\n');
  return dir;
}

describe('what the iptables chain costs, said plainly', () => {
  test('compile --target iptables warns from 1,000 rules, with the count; nft does not; --silence hides it', async () => {
    const dir = policyOf(600);
    const ipt = await run(['compile', 'p.yaml', '--target', 'iptables'], { cwd: dir });
    expect(ipt.code).toBe(0);
    expect(ipt.stderr).toMatch(/warning: on iptables this policy is 1,2\d\d rules, tried one after another for every new connection \(iptables has no sets\)/);
    expect(ipt.stderr).toMatch(/use the nft backend/);
    const json = await run(['compile', 'p.yaml', '--target', 'iptables', '--json'], { cwd: dir });
    expect(envelope(json.stdout, 'compile', json.code).diagnostics).toMatchObject([{ severity: 'warning', code: 'iptables-linear' }]);
    expect((await run(['compile', 'p.yaml', '--target', 'nft'], { cwd: dir })).stderr).toBe('');
    expect((await run(['compile', 'p.yaml', '--target', 'iptables', '--silence', 'iptables-linear'], { cwd: dir })).stderr).toBe('');
  });

  test('a small policy hears nothing of it', async () => {
    const dir = policyOf(100);
    expect((await run(['compile', 'p.yaml', '--target', 'iptables'], { cwd: dir })).stderr).toBe('');
    const c = await run(['check', 'p.yaml'], { cwd: dir });
    expect(c.stdout).not.toMatch(/iptables/);
    expect(resultOf((await run(['check', 'p.yaml', '--json'], { cwd: dir })).stdout, 'check').destinations).toBe(200);
  });

  test('check notes what many destinations cost on each backend', async () => {
    const dir = policyOf(600);
    const c = await run(['check', 'p.yaml'], { cwd: dir });
    expect(c.code).toBe(0);
    expect(c.stdout).toMatch(/^p\.yaml: 1,200 destination addresses and ranges: on nft, one set lookup per packet whatever the number; on iptables \(no sets\), one rule each, tried in turn/m);
    expect(resultOf((await run(['check', 'p.yaml', '--json'], { cwd: dir })).stdout, 'check').destinations).toBe(1200);
  });
});
