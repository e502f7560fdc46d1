/**
 * The life cycle's `--json` envelopes, validated against their published
 * schemas (test/json.ts), in-process against the in-memory kernel
 * (kernel/fake-kernel.testkit.ts): plan, apply (a change, then the no-op),
 * status, refresh, rollback, remove, and confirm with nothing to confirm.
 * The kernel tests validate the same commands' output on a real kernel.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { captureIo, fixedResolver, tempDir } from '../../test/helpers.js';
import { envelope, resultOf } from '../../test/json.js';
import { fakeExecer } from '../kernel/exec.js';
import { FakeKernel } from '../kernel/fake-kernel.testkit.js';
import { applyCommand } from './commands/apply.js';
import { confirmCommand } from './commands/confirm.js';
import { planCommand } from './commands/plan.js';
import { refreshCommand } from './commands/refresh.js';
import { removeCommand } from './commands/remove.js';
import { rollbackCommand } from './commands/rollback.js';
import { statusCommand } from './commands/status.js';
import type { KernelSeams } from './kernel-flags.js';

const POLICY = `version: 1
default: reject
allow:
  - name: web
    reason: the mirror
    to: [192.0.2.80, "2001:db8::80", mirror.test]
    ports: [tcp/443]
`;

describe('the life cycle in --json, every envelope valid', () => {
  test('plan, apply, apply again, status, refresh, rollback, remove, confirm', async () => {
    const dir = tempDir('egress-json-lc-');
    writeFileSync(join(dir, 'policy.yaml'), POLICY);
    const seams: KernelSeams = { uid: 0, execer: fakeExecer(), kernel: new FakeKernel(), self: ['/usr/bin/node', '/usr/lib/egress/run.js'] };
    const resolver = fixedResolver({ 'mirror.test': { ipv4: ['192.0.2.81'], ipv6: ['2001:db8::81'] } });
    const io = () => Object.assign(captureIo(dir, { EGRESS_SYSTEMD_DIR: join(dir, 'systemd'), EGRESS_PACKAGED_UNIT_DIR: join(dir, 'lib-systemd'), EGRESS_IFUPDOWN_DIR: join(dir, 'if-pre-up.d') }), { resolver });

    const p = io();
    const planned = await planCommand(p, 'policy.yaml', { backend: 'nft', json: true }, seams);
    expect(planned).toBe(3);
    expect(envelope(p.out, 'plan', planned)).toMatchObject({ ok: true, result: { file: 'policy.yaml', changes: true, table: 'create', backend: 'nft' } });

    const a = io();
    expect(await applyCommand(a, 'policy.yaml', { backend: 'nft', json: true }, seams)).toBe(0);
    const applied = resultOf(a.out, 'apply', 0);
    expect(applied).toMatchObject({ file: 'policy.yaml', backend: 'nft', mode: 'enforce', changed: true, pending: null, plan: { table: 'create' } });
    expect(applied.policyHash).toMatch(/^sha256:/);

    const again = io();
    expect(await applyCommand(again, 'policy.yaml', { backend: 'nft', json: true }, seams)).toBe(0);
    expect(resultOf(again.out, 'apply', 0)).toMatchObject({ changed: false, plan: { changes: false, count: 0 } });

    const s = io();
    expect(await statusCommand(s, { json: true }, seams)).toBe(0);
    expect(resultOf(s.out, 'status', 0)).toMatchObject({ active: true, applied: true, backend: 'nft', policyHash: applied.policyHash, drift: false });

    const r = io();
    expect(await refreshCommand(r, 'policy.yaml', { json: true }, seams)).toBe(0);
    expect(resultOf(r.out, 'refresh', 0)).toMatchObject({ file: 'policy.yaml', changed: false, stale: [] });

    // Nothing awaits confirmation: a plain failure, as an envelope.
    const c = io();
    expect(await confirmCommand(c, { json: true }, seams)).toBe(1);
    expect(envelope(c.out, 'confirm', 1)).toMatchObject({ ok: false, result: null, diagnostics: [{ severity: 'error', code: 'failed' }] });

    const rb = io();
    expect(await rollbackCommand(rb, { json: true }, seams)).toBe(0);
    // Nothing of egress was live before the first apply: rolling back removes it.
    expect(resultOf(rb.out, 'rollback', 0)).toEqual({ restored: null });

    const again2 = io();
    expect(await applyCommand(again2, 'policy.yaml', { backend: 'nft', json: true }, seams)).toBe(0);
    const rm = io();
    expect(await removeCommand(rm, { json: true }, seams)).toBe(0);
    expect(resultOf(rm.out, 'remove', 0).removed.length).toBeGreaterThan(0);

    const gone = io();
    expect(await statusCommand(gone, { json: true }, seams)).toBe(0);
    expect(resultOf(gone.out, 'status', 0)).toMatchObject({ active: false, applied: false });
  });
});
