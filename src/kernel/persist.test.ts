import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readlinkSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { fakeExecer } from './exec.js';
import { kernelTest } from '../../test/netns.js';
import { persistOff, persistOn, renderUnit, UNIT_NAME, UNIT_TEMPLATE } from './persist.js';

const ROOT = join(import.meta.dirname, '..', '..');
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
  kernelTest('systemd-analyze verify accepts the rendered unit', () => {
    const d = mkdtempSync(join(tmpdir(), 'egress-unit-'));
    const x = fakeExecer();
    return persistOn({ execer: x }, d, EXEC, '/var/lib/egress').then(() => {
      // Throws (non-zero exit) on any problem it reports.
      execFileSync('systemd-analyze', ['verify', join(d, UNIT_NAME)], { cwd: d, stdio: 'pipe', timeout: 60_000 });
    });
  });

  test('persist writes and links; --off removes both', async () => {
    const d = mkdtempSync(join(tmpdir(), 'egress-unit-'));
    const x = fakeExecer();
    const [unit, link] = await persistOn({ execer: x }, d, EXEC, '/srv/egress-state');
    expect(readlinkSync(link!)).toBe(unit);
    expect(readFileSync(unit!, 'utf8')).toContain('Environment=EGRESS_STATE_DIR=/srv/egress-state');
    await persistOn({ execer: x }, d, EXEC, '/srv/egress-state'); // idempotent
    expect(await persistOff({ execer: x }, d)).toHaveLength(2);
    expect(existsSync(unit!) || existsSync(link!)).toBe(false);
  });
});
