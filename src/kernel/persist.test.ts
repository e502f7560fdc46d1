import { spawnSync } from 'node:child_process';
import { readFileSync, readlinkSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { fakeExecer } from './exec.js';
import { kernelTest } from '../../test/netns.js';
import { forwarderCommand, forwarderUnit } from './forwarder.js';
import { FORWARD_UNIT_NAME, FORWARD_UNIT_TEMPLATE, persistOff, persistOn, renderUnit, UNIT_NAME, UNIT_TEMPLATE, persistEnabled } from './persist.js';
import { DNS_UNIT_NAME, DNS_UNIT_TEMPLATE } from './units.js';
import { tempDir } from '../../test/helpers.js';
import { ROOT } from '../../test/paths.js';

const EXEC = [process.execPath, join(ROOT, 'bin', 'egress.js')];

describe('egress-restore.service', () => {
  test('systemd/ ships exactly the template persist installs', () => {
    expect(readFileSync(join(ROOT, 'systemd', UNIT_NAME), 'utf8')).toBe(UNIT_TEMPLATE);
  });

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
  test('systemd/ ships exactly the egress-forward.service template', () => {
    expect(readFileSync(join(ROOT, 'systemd', FORWARD_UNIT_NAME), 'utf8')).toBe(FORWARD_UNIT_TEMPLATE);
  });

  kernelTest('systemd-analyze verify accepts every rendered unit', () => {
    const d = tempDir('egress-unit-');
    const x = fakeExecer();
    return persistOn({ execer: x }, d, EXEC, '/var/lib/egress').then(() => {
      // Throws (non-zero exit) on any problem it reports; it also fails on warnings about unknown or misspelt settings, which it prints to stderr.
      for (const u of [UNIT_NAME, DNS_UNIT_NAME, FORWARD_UNIT_NAME]) {
        const r = spawnSync('systemd-analyze', ['verify', join(d, u)], { cwd: d, encoding: 'utf8', timeout: 60_000 });
        expect(r.status, `${u}: ${r.stderr}`).toBe(0);
        expect(r.stderr.split('\n').filter((l) => l.includes(u)), u).toEqual([]);
      }
    });
  });

  test('persist writes and links the units (egress-forward.service wanted by docker.service); --off removes them', async () => {
    const d = tempDir('egress-unit-');
    const x = fakeExecer();
    expect(persistEnabled(d)).toBe(false); // what confirm asks before it says "restored at boot"
    const [unit, link, dnsUnit, dnsLink, fwdUnit, fwdLink] = await persistOn({ execer: x }, d, EXEC, '/srv/egress-state');
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
  test('systemd/ ships exactly the template', () => {
    expect(readFileSync(join(ROOT, 'systemd', DNS_UNIT_NAME), 'utf8')).toBe(DNS_UNIT_TEMPLATE);
  });

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
