import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync, existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { fakeExecer } from './exec.js';
import { kernelTest } from '../../test/netns.js';
import { forwarderCommand, forwarderUnit } from './forwarder.js';
import { FORWARD_UNIT_NAME, FORWARD_UNIT_TEMPLATE, persistOff, persistOn, renderUnit, shippedUnits, UNIT_NAME, UNIT_TEMPLATE, persistEnabled } from './persist.js';
import { DNS_UNIT_NAME, PACKAGE_ORIGIN, PACKAGED_EGRESS, PACKAGED_NODE, REFRESH_UNIT_NAME, SAMPLE_UNIT_NAME, STATS_UNIT_NAME, writtenByEgress } from './units.js';
import { tempDir } from '../../test/helpers.js';
import { ROOT } from '../../test/paths.js';

const EXEC = [process.execPath, join(ROOT, 'bin', 'egress.js')];

describe('the units the package ships (systemd/)', () => {
  test('systemd/ holds exactly the templates rendered for the package: /usr/bin/egress, /var/lib/egress', () => {
    const shipped = shippedUnits();
    expect(readdirSync(join(ROOT, 'systemd')).filter((f) => f !== 'README.md').sort()).toEqual(shipped.map(([n]) => n).sort());
    for (const [name, text] of shipped) expect(readFileSync(join(ROOT, 'systemd', name), 'utf8'), name).toBe(text);
    expect(shipped.find(([n]) => n === UNIT_NAME)![1]).toBe(renderUnit([PACKAGED_EGRESS], '/var/lib/egress', UNIT_TEMPLATE, PACKAGE_ORIGIN));
  });

  test('they name the installed program only: no checkout path, nothing left to fill in', () => {
    for (const [name, text] of shippedUnits()) {
      expect(text, name).not.toMatch(/@[A-Z_]+@/);
      for (const exec of text.match(/^ExecStart=.*$/gm) ?? []) {
        const paths = exec.slice('ExecStart='.length).split(' ').filter((w) => w.startsWith('/'));
        expect(paths[0], `${name}: ${exec}`).toMatch(/^\/usr\/bin\/(egress|node)$/);
        expect(paths.filter((p) => p.startsWith('/usr/')), `${name}: ${exec}`).toEqual(paths.filter((p) => p === PACKAGED_EGRESS || p === PACKAGED_NODE));
      }
      // Written by the package, not by persist: persist tells the two apart by the first line.
      expect(writtenByEgress(text), name).toBe(false);
    }
    const by = new Map(shippedUnits());
    expect(by.get(UNIT_NAME)).toMatch(/^ExecStart=\/usr\/bin\/egress _restore-boot$/m);
    expect(by.get(FORWARD_UNIT_NAME)).toMatch(/^ExecStart=\/usr\/bin\/egress _forward-jump$/m);
    expect(by.get(DNS_UNIT_NAME)).toMatch(/^ExecStart=\/usr\/bin\/node (--\S+ )+\/usr\/bin\/egress _dns-forwarder \/var\/lib\/egress\/dns-forwarder\.json$/m);
    expect(by.get(REFRESH_UNIT_NAME)).toMatch(/^ExecStart=\/usr\/bin\/egress refresh --watch \/etc\/egress\/policy\.yaml$/m);
    expect(by.get(STATS_UNIT_NAME)).toMatch(/^ExecStart=\/usr\/bin\/egress stats --journal --since 1d --prometheus --output \/var\/lib\/prometheus\/node-exporter\/egress\.prom$/m);
    expect(by.get(SAMPLE_UNIT_NAME)).toMatch(/^ExecStart=\/usr\/bin\/egress stats --sample$/m);
    for (const n of [UNIT_NAME, DNS_UNIT_NAME, FORWARD_UNIT_NAME, REFRESH_UNIT_NAME, STATS_UNIT_NAME, SAMPLE_UNIT_NAME]) expect(by.get(n), n).toMatch(/^Environment=EGRESS_STATE_DIR=\/var\/lib\/egress( |$)/m);
  });

  // Needs systemd-analyze (scripts/setup.sh installs it): fails without it, skipped only by the kernel tests' opt-out.
  kernelTest('systemd-analyze verify accepts every shipped unit (with this checkout standing in for /usr/bin/egress)', () => {
    const d = tempDir('egress-shipped-');
    for (const [name, text] of shippedUnits()) {
      // verify wants ExecStart='s program to exist: node and this checkout's egress.js in place of the installed ones.
      const here = text.replace(/^ExecStart=\/usr\/bin\/egress /gm, `ExecStart=${EXEC.join(' ')} `).replace(/\/usr\/bin\/node /g, `${process.execPath} `).replace(/\/usr\/bin\/egress /g, `${EXEC[1]} `);
      expect(here).not.toContain(PACKAGED_EGRESS);
      writeFileSync(join(d, name), here);
    }
    for (const [name] of shippedUnits()) {
      const r = spawnSync('systemd-analyze', ['verify', '--man=no', join(d, name)], { cwd: d, encoding: 'utf8', timeout: 60_000 });
      expect(r.status, `${name}: ${r.stderr}`).toBe(0);
      expect(r.stderr.split('\n').filter((l) => l.includes(name)), name).toEqual([]);
    }
  });
});

describe('egress-restore.service', () => {

  test('runs before the network, without default dependencies, and is enabled from sysinit', () => {
    const u = renderUnit(EXEC, '/var/lib/egress');
    expect(u).toMatch(/^DefaultDependencies=no$/m);
    expect(u).toMatch(/^Before=network-pre\.target/m);
    expect(u).toMatch(/^Wants=network-pre\.target$/m);
    expect(u).toMatch(/^WantedBy=sysinit\.target$/m);
    expect(u).toContain(`ExecStart=${process.execPath} ${EXEC[1]} _restore-boot`);
    expect(u).not.toMatch(/@[A-Z_]+@/);
  });

  test('odd paths are quoted or refused', () => {
    expect(renderUnit(['/opt/my node/node', '/x/egress.js'], '/var/lib/egress')).toContain('ExecStart="/opt/my node/node" /x/egress.js');
    expect(() => renderUnit(['/x"y'], '/var/lib/egress')).toThrow();
  });

  // Needs systemd-analyze (scripts/setup.sh installs it): fails without it, skipped only by the kernel tests' opt-out.
  kernelTest('systemd-analyze verify accepts every rendered unit', () => {
    const d = tempDir('egress-unit-');
    const x = fakeExecer();
    return persistOn({ execer: x }, d, EXEC, '/var/lib/egress').then(() => {
      // Throws (non-zero exit) on any problem it reports; it also fails on warnings about unknown or misspelt settings, which it prints to stderr.
      for (const u of [UNIT_NAME, DNS_UNIT_NAME, FORWARD_UNIT_NAME]) {
        const r = spawnSync('systemd-analyze', ['verify', '--man=no', join(d, u)], { cwd: d, encoding: 'utf8', timeout: 60_000 });
        expect(r.status, `${u}: ${r.stderr}`).toBe(0);
        expect(r.stderr.split('\n').filter((l) => l.includes(u)), u).toEqual([]);
      }
    });
  });

  test('persist writes and links the units (egress-forward.service wanted by docker.service); --off removes them', async () => {
    const d = tempDir('egress-unit-');
    const x = fakeExecer();
    expect(persistEnabled(d)).toBe(false); // what confirm asks before it says "restored at boot"
    const r = await persistOn({ execer: x }, d, EXEC, '/srv/egress-state');
    expect(r).toMatchObject({ replaced: [], overrides: [] });
    expect(r.packaged).toBeUndefined();
    const [unit, link, dnsUnit, dnsLink, fwdUnit, fwdLink] = r.files;
    expect(persistEnabled(d)).toBe(true);
    expect(readlinkSync(link!)).toBe(unit);
    expect(readFileSync(unit!, 'utf8')).toContain('Environment=EGRESS_STATE_DIR=/srv/egress-state');
    expect(readlinkSync(dnsLink!)).toBe(dnsUnit);
    expect(dnsLink).toBe(join(d, 'sysinit.target.wants', DNS_UNIT_NAME));
    expect(readFileSync(dnsUnit!, 'utf8')).toBe(forwarderUnit(EXEC, '/srv/egress-state'));
    expect(fwdLink).toBe(join(d, 'docker.service.wants', FORWARD_UNIT_NAME));
    expect(readlinkSync(fwdLink!)).toBe(fwdUnit);
    expect(readFileSync(fwdUnit!, 'utf8')).toBe(renderUnit(EXEC, '/srv/egress-state', FORWARD_UNIT_TEMPLATE));
    expect(readFileSync(fwdUnit!, 'utf8')).toMatch(/^ExecStart=.* _forward-jump$/m);
    await persistOn({ execer: x }, d, EXEC, '/srv/egress-state'); // idempotent
    expect(await persistOff({ execer: x }, d)).toHaveLength(6);
    for (const p of [unit, link, dnsUnit, dnsLink, fwdUnit, fwdLink]) expect(existsSync(p!)).toBe(false);
    expect(persistEnabled(d)).toBe(false);
  });
});

describe('egress-dns.service', () => {
  test('runs the forwarder as root with group egress-dns, restarted when it dies, after the boot restore', () => {
    const u = forwarderUnit(EXEC, '/var/lib/egress');
    const cmd = forwarderCommand(EXEC, '/var/lib/egress');
    expect(u).toContain(`\nExecStart=${cmd.join(' ')}\n`);
    // node first (its flags may follow), egress, then the forwarder's spec.
    expect([cmd[0], ...cmd.slice(-3)]).toEqual([...EXEC, '_dns-forwarder', '/var/lib/egress/dns-forwarder.json']);
    expect(u).toMatch(/^Group=egress-dns$/m);
    expect(u).not.toMatch(/^User=/m);
    expect(u).toMatch(/^Restart=always$/m);
    expect(u).toMatch(/^RestartSec=1s$/m);
    expect(u).toMatch(/^After=.*\begress-restore\.service\b/m);
    expect(u).toMatch(/^WantedBy=sysinit\.target$/m);
    // Skipped at boot when the restored ruleset has no dns.proxy (the restore removes the spec).
    expect(u).toMatch(/^ConditionPathExists=\/var\/lib\/egress\/dns-forwarder\.json$/m);
    // The ready line goes where the life cycle waits for it.
    expect(u).toMatch(/^StandardOutput=append:\/var\/lib\/egress\/dns-forwarder\.out$/m);
    expect(u).toMatch(/^CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_BIND_SERVICE$/m);
    expect(u).toMatch(/^ReadWritePaths=\/var\/lib\/egress$/m);
    expect(u).not.toMatch(/^MemoryDenyWriteExecute=/m);
    expect(u).not.toMatch(/@[A-Z_]+@/);
  });

  test('a state directory that cannot be named in a unit is refused', () => {
    expect(() => forwarderUnit(EXEC, '/srv/my state')).toThrow(/cannot be named in a systemd unit/);
  });
});

describe('persist with the package installed', () => {
  const PKG_SELF = [PACKAGED_NODE, PACKAGED_EGRESS];
  /** A package's unit directory, as the .deb installs it. */
  function packageDir(): string {
    const d = tempDir('egress-pkg-');
    for (const [name, text] of shippedUnits()) writeFileSync(join(d, name), text);
    return d;
  }

  test('enables the package units instead of writing its own; an earlier persist\'s copies go, an administrator\'s stay; --off removes only the links', async () => {
    const pkg = packageDir();
    const d = tempDir('egress-etc-');
    const x = fakeExecer();
    // An earlier persist from a checkout left its units (they would override the package's), and an administrator's copy of one.
    await persistOn({ execer: x }, d, EXEC, '/var/lib/egress');
    const admin = '# my own\n[Service]\nExecStart=/bin/true\n';
    writeFileSync(join(d, FORWARD_UNIT_NAME), admin);
    const r = await persistOn({ execer: x }, d, PKG_SELF, '/var/lib/egress', ['/nonexistent/lib/systemd/system', pkg]);
    expect(r.packaged).toBe(pkg);
    expect(r.replaced).toEqual([join(d, UNIT_NAME), join(d, DNS_UNIT_NAME)]);
    expect(r.overrides).toEqual([join(d, FORWARD_UNIT_NAME)]);
    expect(r.files).toEqual([
      join(pkg, UNIT_NAME),
      join(d, 'sysinit.target.wants', UNIT_NAME),
      join(pkg, DNS_UNIT_NAME),
      join(d, 'sysinit.target.wants', DNS_UNIT_NAME),
      join(pkg, FORWARD_UNIT_NAME),
      join(d, 'docker.service.wants', FORWARD_UNIT_NAME),
    ]);
    for (let i = 0; i < 6; i += 2) expect(readlinkSync(r.files[i + 1]!)).toBe(r.files[i]);
    expect(existsSync(join(d, UNIT_NAME))).toBe(false);
    expect(readdirSync(d).filter((f) => f.endsWith('.service'))).toEqual([FORWARD_UNIT_NAME]);
    expect(persistEnabled(d)).toBe(true);
    const removed = await persistOff({ execer: x }, d);
    expect(removed.sort()).toEqual([r.files[1], r.files[3], r.files[5]].sort());
    expect(persistEnabled(d)).toBe(false);
    for (const [name, text] of shippedUnits()) expect(readFileSync(join(pkg, name), 'utf8')).toBe(text);
    expect(readFileSync(join(d, FORWARD_UNIT_NAME), 'utf8')).toBe(admin);
  });

  test('package units that do not run this egress, or restore another state directory, are not used: persist writes its own and says why', async () => {
    const pkg = packageDir();
    const x = fakeExecer();
    const other = await persistOn({ execer: x }, tempDir('egress-etc-'), EXEC, '/var/lib/egress', [pkg]);
    expect(other.packaged).toBeUndefined();
    expect(other.notPackaged).toBe(`${join(pkg, UNIT_NAME)} runs /usr/bin/egress, not this egress (${EXEC[1]})`);
    expect(readFileSync(other.files[0]!, 'utf8')).toBe(renderUnit(EXEC, '/var/lib/egress'));
    const state = await persistOn({ execer: x }, tempDir('egress-etc-'), PKG_SELF, '/srv/egress-state', [pkg]);
    expect(state.notPackaged).toBe(`${join(pkg, UNIT_NAME)} restores /var/lib/egress, not /srv/egress-state`);
    expect(readFileSync(state.files[0]!, 'utf8')).toMatch(/^Environment=EGRESS_STATE_DIR=\/srv\/egress-state$/m);
    rmSync(join(pkg, DNS_UNIT_NAME));
    const partial = await persistOn({ execer: x }, tempDir('egress-etc-'), PKG_SELF, '/var/lib/egress', [pkg]);
    expect(partial.notPackaged).toBe(`${pkg} has ${UNIT_NAME} but not ${DNS_UNIT_NAME}`);
    // No package at all: nothing to say.
    expect((await persistOn({ execer: x }, tempDir('egress-etc-'), PKG_SELF, '/var/lib/egress', ['/nonexistent'])).notPackaged).toBeUndefined();
  });
});
