/** persist through its seams: a confirmed dns.proxy policy is persisted with its forwarder's unit (it used to be refused); --off removes both. */
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, expect, test } from 'vitest';
import { fakeExecer } from '../../kernel/exec.js';
import { forwarderUnit } from '../../kernel/forwarder.js';
import { sha256, writeState, type Snapshot } from '../../kernel/state.js';
import { shippedUnits } from '../../kernel/persist.js';
import { DNS_UNIT_NAME, PACKAGED_EGRESS, PACKAGED_NODE } from '../../kernel/units.js';
import { captureIo, NOW, tempDir } from '../../../test/helpers.js';
import { persistCommand } from './persist.js';
import { envelope, jsonResult } from '../../../test/json.js';

const SELF = ['/usr/bin/node', '/usr/lib/egress/bin/egress.js'];
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

// Never the host's own /etc: the ifupdown hook directory is one the test makes (or not).
// Nor the host's /lib/systemd/system: the package's unit directory is one the test makes (or not).
const io = (cwd: string) => captureIo(cwd, { EGRESS_SYSTEMD_DIR: join(cwd, 'units'), EGRESS_IFUPDOWN_DIR: join(cwd, 'if-pre-up.d'), EGRESS_PACKAGED_UNIT_DIR: join(cwd, 'lib-units') });

function confirmedWithDns(stateDir: string): void {
  const ruleset = 'table inet egress {}\n';
  const s: Snapshot = {
    kind: 'ruleset',
    backend: 'nft',
    ruleset,
    rulesetHash: sha256(ruleset),
    fingerprint: '',
    policyFile: '/etc/egress/policy.yaml',
    policyHash: sha256('policy'),
    policyText: 'policy',
    mode: 'enforce',
    default: 'reject',
    hosts: [],
    counters: [],
    dns: { upstream: [{ address: '192.0.2.53', port: 53 }] } as unknown as NonNullable<Snapshot['dns']>,
    appliedAt: NOW.toISOString(),
    appliedBy: { user: 'root', uid: 0 },
  };
  mkdirSync(stateDir, { mode: 0o700 });
  writeState(stateDir, 'confirmed', s);
}

test('a confirmed dns.proxy policy is persisted with egress-dns.service; --off removes both units', async () => {
  const cwd = tempDir('egress-persist-');
  dirs.push(cwd);
  const i = io(cwd);
  confirmedWithDns(join(cwd, 'state'));
  const seams = { execer: fakeExecer(), self: SELF, uid: 0 };
  expect(await persistCommand(i, { json: true }, seams)).toBe(0);
  const r = jsonResult(i.out, 'persist') as { dns: boolean; files: string[] };
  expect(r).toMatchObject({ dns: true });
  const units = join(cwd, 'units');
  expect(r.files).toEqual([
    join(units, 'egress-restore.service'),
    join(units, 'sysinit.target.wants', 'egress-restore.service'),
    join(units, DNS_UNIT_NAME),
    join(units, 'sysinit.target.wants', DNS_UNIT_NAME),
    join(units, 'egress-forward.service'),
    join(units, 'docker.service.wants', 'egress-forward.service'),
  ]);
  expect(readFileSync(join(units, DNS_UNIT_NAME), 'utf8')).toBe(forwarderUnit(SELF, join(cwd, 'state')));
  expect(readlinkSync(join(units, 'sysinit.target.wants', DNS_UNIT_NAME))).toBe(join(units, DNS_UNIT_NAME));

  i.out = '';
  expect(await persistCommand(i, { off: true }, seams)).toBe(0);
  expect(i.out).toMatch(/^persistence off: removed /);
  for (const f of r.files) expect(existsSync(f)).toBe(false);
});

test('on a host not booted by systemd, persist says the rules will not come back and what to run instead (it said "persistence on")', async () => {
  const cwd = tempDir('egress-persist-');
  dirs.push(cwd);
  confirmedWithDns(join(cwd, 'state'));
  const text = io(cwd);
  expect(await persistCommand(text, {}, { execer: fakeExecer(), self: SELF, uid: 0, systemdBooted: () => false })).toBe(0);
  expect(text.out).not.toMatch(/persistence on/);
  expect(text.out).toMatch(/not booted by systemd .* the rules will NOT come back after a reboot/);
  expect(text.out).toMatch(/Run "egress _restore-boot" early at boot/);
  const json = io(cwd);
  expect(await persistCommand(json, { json: true }, { execer: fakeExecer(), self: SELF, uid: 0, systemdBooted: () => false })).toBe(0);
  expect(envelope(json.out, 'persist')).toMatchObject({ ok: true, result: { persist: false, bootedBySystemd: false } });
  const on = io(cwd);
  expect(await persistCommand(on, {}, { execer: fakeExecer(), self: SELF, uid: 0, systemdBooted: () => true })).toBe(0);
  expect(on.out).toMatch(/^persistence on: /);
});

test('without systemd but with ifupdown, persist installs a pre-up hook that restores at boot, once; --off removes it', async () => {
  const cwd = tempDir('egress-persist-');
  confirmedWithDns(join(cwd, 'state'));
  mkdirSync(join(cwd, 'if-pre-up.d'));
  const seams = { execer: fakeExecer(), self: SELF, uid: 0, systemdBooted: () => false };
  const text = io(cwd);
  expect(await persistCommand(text, {}, seams)).toBe(0);
  const hook = join(cwd, 'if-pre-up.d', 'egress');
  expect(text.out).toContain(`persistence on: ${hook} (an ifupdown pre-up hook) restores /etc/egress/policy.yaml and starts its DNS forwarder at boot`);
  expect(statSync(hook).mode & 0o777).toBe(0o755);
  const body = readFileSync(hook, 'utf8');
  expect(body).toContain(`restore() { EGRESS_STATE_DIR='${join(cwd, 'state')}' '/usr/bin/node' '/usr/lib/egress/bin/egress.js' _restore-boot; }`);
  expect(spawnSync('sh', ['-n', hook]).status).toBe(0);
  const json = io(cwd);
  expect(await persistCommand(json, { json: true }, seams)).toBe(0);
  expect(envelope(json.out, 'persist')).toMatchObject({ ok: true, result: { persist: true, bootedBySystemd: false, ifupdownHook: hook } });
  const off = io(cwd);
  expect(await persistCommand(off, { off: true }, seams)).toBe(0);
  expect(off.out).toContain(hook);
  expect(existsSync(hook)).toBe(false);
});

test('run as the installed /usr/bin/egress, persist enables the package\'s units (writes none) and --off disables them', async () => {
  const cwd = tempDir('egress-persist-');
  const state = join(cwd, 'state');
  confirmedWithDns(state);
  const lib = join(cwd, 'lib-units');
  mkdirSync(lib);
  for (const [name, text] of shippedUnits(state)) writeFileSync(join(lib, name), text);
  const seams = { execer: fakeExecer(), self: [PACKAGED_NODE, PACKAGED_EGRESS], uid: 0, systemdBooted: () => true };
  const json = io(cwd);
  expect(await persistCommand(json, { json: true }, seams)).toBe(0);
  const r = jsonResult(json.out, 'persist') as { packaged: string; files: string[] };
  expect(r.packaged).toBe(lib);
  expect(r.files[0]).toBe(join(lib, 'egress-restore.service'));
  expect(readlinkSync(r.files[1]!)).toBe(join(lib, 'egress-restore.service'));
  expect(readdirSync(join(cwd, 'units')).sort()).toEqual(['docker.service.wants', 'sysinit.target.wants']);
  const text = io(cwd);
  expect(await persistCommand(text, {}, seams)).toBe(0);
  expect(text.out).toMatch(new RegExp(`^persistence on: the package's ${join(lib, 'egress-restore.service')} \\(enabled via `));
  const off = io(cwd);
  expect(await persistCommand(off, { off: true }, seams)).toBe(0);
  expect(off.out).toMatch(/^persistence off: removed /);
  expect(readdirSync(join(cwd, 'units', 'sysinit.target.wants'))).toEqual([]);
  expect(readdirSync(lib)).toHaveLength(shippedUnits().length);
});

test('a program in a temporary directory is refused (the host would boot with no rules at all); one in a home directory is warned about', async () => {
  const cwd = tempDir('egress-persist-');
  confirmedWithDns(join(cwd, 'state'));
  const tmp = io(cwd);
  await expect(persistCommand(tmp, {}, { execer: fakeExecer(), self: ['/usr/bin/node', '/tmp/egress-checkout/bin/egress.js'], uid: 0, systemdBooted: () => true })).rejects.toThrow(
    /^\/tmp\/egress-checkout\/bin\/egress\.js is in a temporary directory, which is emptied at boot/,
  );
  expect(existsSync(join(cwd, 'units'))).toBe(false);
  // --force: persisted, with a warning (for a /tmp that survives reboots).
  const forced = io(cwd);
  expect(await persistCommand(forced, { force: true }, { execer: fakeExecer(), self: ['/usr/bin/node', '/tmp/egress-checkout/bin/egress.js'], uid: 0, systemdBooted: () => true })).toBe(0);
  expect(forced.err).toMatch(/^egress: WARNING: the boot unit runs \/tmp\/egress-checkout\/bin\/egress\.js, in a temporary directory \(--force\)/);
  expect(readFileSync(join(cwd, 'units', 'egress-restore.service'), 'utf8')).toMatch(/^ExecStart=\/usr\/bin\/node \/tmp\/egress-checkout\/bin\/egress\.js _restore-boot$/m);
  const home = io(cwd);
  expect(await persistCommand(home, {}, { execer: fakeExecer(), self: ['/usr/bin/node', '/home/op/egress/bin/egress.js'], uid: 0, systemdBooted: () => true })).toBe(0);
  expect(home.err).toMatch(/^egress: WARNING: the boot unit runs \/home\/op\/egress\/bin\/egress\.js, in a home directory/);
  expect(home.out).toMatch(/^persistence on: /);
  expect(readFileSync(join(cwd, 'units', 'egress-restore.service'), 'utf8')).toMatch(/^ExecStart=\/usr\/bin\/node \/home\/op\/egress\/bin\/egress\.js _restore-boot$/m);
});
