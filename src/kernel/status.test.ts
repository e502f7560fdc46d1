import { describe, expect, test } from 'vitest';
import { captureIo, tempDir } from '../../test/helpers.js';
import { statusCommand } from '../cli/commands/status.js';
import { fakeExecer } from './exec.js';
import { egressOnly, expiriesOf, nftSetSizes, type Status } from './status.js';
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BACKENDS } from '../backends/registry.js';
import { hasErrors } from '../diag/diagnostic.js';
import { loadPolicyText } from '../index.js';
import { staticResolver } from '../resolve/resolver.js';
import { FakeKernel } from './fake-kernel.testkit.js';
import { appendHistory } from './history.js';
import { apply, refresh, type Ctx, type Desired } from './lifecycle.js';
import { renderUnit, UNIT_NAME } from './persist.js';
import { writeRefreshWatch } from './refresh-watch.js';
import { sha256 } from './state.js';
import { envelope, jsonResult, resultOf } from '../../test/json.js';

describe('status: expiries of the live policy', () => {
  const POLICY = `version: 1
allow:
  - { name: old, reason: r, to: [192.0.2.1], expires: 2026-05-30 }
  - { name: soon, reason: r, to: [192.0.2.2], expires: 2026-06-03 }
  - { name: plain, reason: r, to: [192.0.2.3] }
deny:
  - { name: today, reason: r, to: [192.0.2.4], expires: 2026-06-01 }
`;
  test('past and upcoming ends (the end of the expiry day, UTC), soonest first; rules without expires are not listed', () => {
    const now = new Date('2026-06-01T12:00:00Z');
    expect(expiriesOf('p.yaml', POLICY, now)).toEqual([
      { rule: 'old', expires: '2026-05-30', ends: '2026-05-31T00:00:00.000Z', past: true, daysLeft: -1 },
      { rule: 'today', expires: '2026-06-01', ends: '2026-06-02T00:00:00.000Z', past: false, daysLeft: 1 },
      { rule: 'soon', expires: '2026-06-03', ends: '2026-06-04T00:00:00.000Z', past: false, daysLeft: 3 },
    ]);
  });

  test('a policy text that does not parse lists nothing rather than failing status', () => {
    expect(expiriesOf('p.yaml', 'version: [', new Date())).toEqual([]);
  });
});

describe('status on a host where egress never applied anything', () => {
  test('is inactive, exit 0, in text and in --json (it exited 1: "no egress state directory")', async () => {
    const cwd = tempDir('egress-status-');
    const io = captureIo(cwd);
    expect(await statusCommand(io, {}, { uid: 0, execer: fakeExecer() })).toBe(0);
    expect(io.out).toMatch(/^status: +inactive: nothing of egress is applied \(state: .*state\)\n$/);
    const j = captureIo(cwd);
    expect(await statusCommand(j, { json: true }, { uid: 0, execer: fakeExecer() })).toBe(0);
    expect(envelope(j.out, 'status', 0)).toMatchObject({ ok: true, result: { active: false, applied: false, counters: [] } });
  });
});

describe('status of an applied policy (fake kernel)', () => {
  const POLICY = `version: 1
default: reject
log: { prefix: "EG ", rate: 5/second }
sets:
  mirrors: [192.0.2.10, 192.0.2.11, "2001:db8::10"]
allow:
  - name: web
    reason: the web
    to: [mirror.test, $mirrors, 198.51.100.7]
    ports: [tcp/443]
    user: [root]
deny:
  - name: smtp
    reason: no mail
    ports: [tcp/25]
`;
  const HOSTS = { 'mirror.test': { ipv4: ['192.0.2.80'], ipv6: ['2001:db8::80'] } };

  async function applied(backend: 'nft' | 'iptables' = 'nft') {
    const dir = tempDir('egress-status-');
    const policyFile = join(dir, 'policy.yaml');
    writeFileSync(policyFile, POLICY);
    const loaded = await loadPolicyText(policyFile, POLICY, { resolver: staticResolver(HOSTS) });
    expect(hasErrors(loaded.diagnostics)).toBe(false);
    const d: Desired = { backend, ir: loaded.ir!, artifact: BACKENDS[backend]!.emit(loaded.ir!).value!, policyFile, policyText: POLICY, policyHash: sha256(POLICY) };
    const k = new FakeKernel();
    const x = fakeExecer();
    const env = { EGRESS_STATE_DIR: join(dir, 'state'), EGRESS_SYSTEMD_DIR: join(dir, 'systemd'), EGRESS_PACKAGED_UNIT_DIR: join(dir, 'lib-systemd'), EGRESS_IFUPDOWN_DIR: join(dir, 'if-pre-up.d') };
    const ctx: Ctx = { w: { execer: x }, stateDir: env.EGRESS_STATE_DIR, env, now: () => new Date(), who: { user: 'alice', uid: 1000 }, note: () => {}, self: ['/usr/bin/node', '/usr/lib/egress/run.js'], kernel: k };
    await apply(ctx, d);
    const status = async (json = false) => {
      const io = captureIo(dir, env);
      expect(await statusCommand(io, { json }, { uid: 0, execer: x, kernel: k })).toBe(0);
      return io.out;
    };
    return { dir, policyFile, env, ctx, d, k, status };
  }

  test('logging, boot restore off, names, no refresh yet, the policy file unchanged, what each rule admits', async () => {
    const w = await applied();
    const out = await w.status();
    expect(out).toContain('logging:  prefix "EG ", at most 5/second burst 5, uid on; logs the default ("EG P:- "), smtp ("EG D:smtp ")\n');
    expect(out).toContain('boot:     not restored at boot ("egress persist" is off)');
    expect(out).toContain('name:     mirror.test 192.0.2.80, 2001:db8::80\n');
    expect(out).toContain('refresh:  never refreshed');
    expect(out).toContain('no "refresh --watch" running');
    expect(out).not.toMatch(/changed since it was applied|rollback:/);
    expect(out).toMatch(/\nweb +allow +host +mirror\.test, \$mirrors \(3\), 1 address = 3 ipv4 \+ 2 ipv6 in the kernel +tcp\/443 +root +no +0 +0\n/);
    expect(out).toMatch(/\nsmtp +deny +host +anywhere +tcp\/25 +any +yes +0 +0\n/);
    const j = resultOf(await w.status(true), 'status');
    expect(j).toMatchObject({ active: true, policyOnDisk: { state: 'same' }, persistence: { enabled: false }, compared: { what: 'full' } });
    expect(j.log).toEqual({ prefix: 'EG ', uid: true, rate: '5/second burst 5', rules: [{ rule: '-', prefix: 'EG P:- ' }, { rule: 'smtp', prefix: 'EG D:smtp ' }] });
    expect(j.names).toEqual([{ name: 'mirror.test', ipv4: ['192.0.2.80'], ipv6: ['2001:db8::80'], status: 'ok' }]);
    expect(j.rules!.find((r) => r.rule === 'web')).toMatchObject({ action: 'allow', scope: ['host'], to: { names: ['mirror.test'], sets: [{ name: '$mirrors', elements: 3 }], addresses: 1, any: false }, kernelAddresses: { ipv4: 3, ipv6: 2 }, ports: ['tcp/443'], users: ['root'], logs: false });
  });

  test('the policy file changed on disk, or gone', async () => {
    const w = await applied('iptables');
    writeFileSync(w.policyFile, POLICY + '# edited\n');
    expect(await w.status()).toContain(`warning:  ${w.policyFile} changed since it was applied (now ${sha256(POLICY + '# edited\n')})`);
    rmSync(w.policyFile);
    expect(await w.status()).toContain(`warning:  ${w.policyFile} is gone`);
    expect(jsonResult(await w.status(true), 'status')).toMatchObject({ policyOnDisk: { state: 'missing' } });
  });

  test('boot restore: by the package\'s units, by units persist wrote', async () => {
    const w = await applied();
    const wants = join(w.env.EGRESS_SYSTEMD_DIR, 'sysinit.target.wants');
    mkdirSync(wants, { recursive: true });
    mkdirSync(w.env.EGRESS_PACKAGED_UNIT_DIR, { recursive: true });
    const pkgUnit = join(w.env.EGRESS_PACKAGED_UNIT_DIR, UNIT_NAME);
    writeFileSync(pkgUnit, '# Shipped by the egress package\n');
    symlinkSync(pkgUnit, join(wants, UNIT_NAME));
    expect(await w.status()).toContain(`boot:     restored at boot (the last confirmed policy) by the package's units (${pkgUnit})\n`);
    rmSync(join(wants, UNIT_NAME));
    const own = join(w.env.EGRESS_SYSTEMD_DIR, UNIT_NAME);
    writeFileSync(own, renderUnit(['/usr/bin/node', '/x/run.js'], w.env.EGRESS_STATE_DIR));
    symlinkSync(own, join(wants, UNIT_NAME));
    expect(await w.status()).toContain(`boot:     restored at boot (the last confirmed policy) by units "egress persist" wrote (${own})\n`);
    expect(jsonResult(await w.status(true), 'status')).toMatchObject({ persistence: { enabled: true, units: 'persist', unit: own } });
  });

  test('the last refresh and the next round of a running refresh --watch', async () => {
    const w = await applied();
    await refresh(w.ctx, w.d);
    writeRefreshWatch(w.env.EGRESS_STATE_DIR, { pid: process.pid, at: '2026-06-01T12:00:00.000Z', next: '2026-06-01T12:05:00.000Z', names: ['mirror.test'] });
    const out = await w.status();
    expect(out).toMatch(/refresh:  last \S+ \(ok: no address changed\); next 2026-06-01T12:05:00.000Z \(refresh --watch, pid \d+: mirror\.test\)\n/);
    writeRefreshWatch(w.env.EGRESS_STATE_DIR, { pid: 2 ** 22 + 1, at: '2026-06-01T12:00:00.000Z', next: '2026-06-01T12:05:00.000Z', names: [] });
    expect(await w.status()).toContain(`no "refresh --watch" running (pid ${2 ** 22 + 1} is gone)`);
    expect(jsonResult(await w.status(true), 'status')).toMatchObject({ refresh: { last: { outcome: 'ok', message: 'no address changed' }, watch: { running: false } } });
  });

  test('the last automatic rollback: when, why, what it restored', async () => {
    const w = await applied();
    appendHistory(w.env.EGRESS_STATE_DIR, { time: '2026-06-01T12:02:00.000Z', action: 'auto-rollback', user: 'root', uid: 0, policyFile: '/etc/egress/old.yaml', policyHash: 'sha256:ab', backend: 'nft', mode: 'enforce', outcome: 'ok', message: 'not confirmed by 2026-06-01T12:02:00.000Z' });
    expect(await w.status()).toContain('rollback: automatic at 2026-06-01T12:02:00Z (not confirmed by 2026-06-01T12:02:00.000Z): restored /etc/egress/old.yaml (sha256:ab)\n');
    expect(jsonResult(await w.status(true), 'status')).toMatchObject({ lastAutoRollback: { time: '2026-06-01T12:02:00.000Z', restored: { policyFile: '/etc/egress/old.yaml', policyHash: 'sha256:ab' } } });
  });
});

describe('status helpers', () => {
  test('nftSetSizes counts elements per set, inline and one per line', () => {
    const text = 'table inet egress {\n\tset a {\n\t\ttype ipv4_addr\n\t\telements = { 192.0.2.1, 192.0.2.2 }\n\t}\n\tset b {\n\t\ttype ipv6_addr\n\t\tflags interval\n\t\telements = {\n\t\t\t2001:db8::1,\n\t\t\t2001:db8::2,\n\t\t\t2001:db8::3,\n\t\t}\n\t}\n\tset c {\n\t\ttype ipv4_addr\n\t}\n}\n';
    expect(nftSetSizes(text)).toEqual(new Map([['a', 2], ['b', 3], ['c', 0]]));
  });

  test('egressOnly keeps table inet egress of a whole-ruleset listing, nothing of other tables', () => {
    const json = JSON.stringify({ nftables: [{ metainfo: {} }, { table: { family: 'inet', name: 'foreign' } }, { counter: { family: 'inet', table: 'foreign', name: 'x' } }, { table: { family: 'inet', name: 'egress' } }, { counter: { family: 'inet', table: 'egress', name: 'logged' } }, { table: { family: 'ip', name: 'egress' } }] });
    const text = 'table inet foreign {\n\tcomment "egress: mode audit, default drop"\n}\ntable inet egress {\n\tchain output {\n\t\tcomment "egress: mode enforce, default reject"\n\t}\n}\n';
    const [j, t] = egressOnly(json, text);
    expect(JSON.parse(j!)).toEqual({ nftables: [{ table: { family: 'inet', name: 'egress' } }, { counter: { family: 'inet', table: 'egress', name: 'logged' } }] });
    expect(t).toBe('table inet egress {\n\tchain output {\n\t\tcomment "egress: mode enforce, default reject"\n\t}\n}\n');
    expect(egressOnly(JSON.stringify({ nftables: [{ table: { family: 'inet', name: 'foreign' } }] }), '')).toEqual([undefined, undefined]);
  });
});
