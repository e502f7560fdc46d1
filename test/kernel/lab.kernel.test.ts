/**
 * `egress lab` end to end (in-process `main`, real namespaces), a lab run
 * with a deliberately broken backend (it must report the disagreement and
 * fail), and cleanup when the process is interrupted.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { BACKENDS } from '../../src/backends/registry.js';
import type { Backend } from '../../src/backends/types.js';
import { main } from '../../src/cli/main.js';
import { labCommand } from '../../src/cli/commands/lab.js';
import { CommandError, type Io } from '../../src/cli/io.js';
import { fakeExecer, realExecer } from '../../src/kernel/exec.js';
import { listNetns } from '../../src/kernel/netns.js';
import { loadForLab, runLab } from '../../src/lab/lab.js';
import { labOk, renderLabText } from '../../src/report/lab.js';
import { ACCOUNTS, NOW } from '../helpers.js';
import { kernelDescribe, useRootGuard } from './harness.js';
import { ROOT } from '../paths.js';
import { envelope } from '../json.js';

function io(cwd = ROOT): Io & { out: string; err: string } {
  const o = { out: '', err: '' };
  return Object.assign(o, {
    stdout: (s: string) => void (o.out += s),
    stderr: (s: string) => void (o.err += s),
    env: {},
    cwd,
    // No default policy here (the host's /etc/egress/policy.yaml, if any, is not this test's): lab without a file rehearses the starter.
    defaultPolicy: join(ROOT, 'test', 'no-such-default-policy.yaml'),
  });
}

describe('lab without the kernel', () => {
  test('not root: exit 1 with a message, before touching anything', async () => {
    const x = fakeExecer();
    await expect(labCommand(io(), undefined, {}, x, 1000)).rejects.toThrow(CommandError);
    await expect(labCommand(io(), undefined, {}, x, 1000)).rejects.toThrow(/lab needs root/);
    expect(x.calls).toEqual([]);
  });

  test('a bad --backend is a usage error', async () => {
    const i = io();
    expect(await main(['lab', '--backend', 'pf'], i)).toBe(2);
    expect(i.err).toMatch(/--backend must be nft, iptables or all/);
  });
});

kernelDescribe('egress lab', () => {
  useRootGuard();

  test('the starter policy on both backends: every probe agrees, the metadata deny is reported as not probed', async () => {
    const i = io();
    const code = await main(['lab', '--backend', 'all', '--json'], i);
    const env = envelope(i.out, 'lab', code);
    const r = env.result as unknown as {
      probes: { rule: string; why: string; flow: { dst: string; host?: string }; kernel: Record<string, { agree: boolean; verdict: string }> }[];
      notProbed: { rule: string; what: string; why: string }[];
      hosts: { name: string }[];
      summary: Record<string, { disagreements: number; through: number; blocked: number }>;
    };
    expect({ code, ok: env.ok, err: i.err.includes('internal error') ? i.err : '' }).toEqual({ code: 0, ok: true, err: '' });
    expect(r.notProbed).toEqual([
      { rule: 'metadata', what: '169.254.169.254', why: 'outside documentation ranges' },
      { rule: 'metadata', what: 'fd00:ec2::254', why: 'outside documentation ranges' },
    ]);
    expect(r.hosts.map((h) => h.name)).toEqual(['deb.debian.org', 'security.debian.org']);
    // The mirrors were probed by name: resolved in the host namespace's own hosts file, both families.
    const byName = r.probes.filter((p) => p.rule === 'mirrors' && p.why === 'allow');
    expect(new Set(byName.map((p) => `${p.flow.host} ${p.flow.dst.includes(':') ? 6 : 4}`))).toEqual(new Set(['deb.debian.org 4', 'deb.debian.org 6', 'security.debian.org 4', 'security.debian.org 6']));
    for (const t of ['nft', 'iptables']) {
      expect(r.summary[t]!.disagreements).toBe(0);
      expect(r.summary[t]!.through).toBeGreaterThan(0);
      expect(r.summary[t]!.blocked).toBeGreaterThan(0);
    }
    // Each allow rule was tried, and got through on both backends.
    for (const rule of ['dns', 'ntp', 'mirrors', 'ping'])
      expect(r.probes.filter((p) => p.rule === rule && p.why === 'allow').every((p) => p.kernel.nft!.verdict === 'accept' && p.kernel.iptables!.verdict === 'accept')).toBe(true);
    expect(i.err).toMatch(/^lab: creating the world namespace/m);
  });

  test('a user the machine lacks is rehearsed as a spare uid, over IPv4 and IPv6', async () => {
    const i = io();
    const code = await main(['lab', 'examples/postfix-only-smtp.yaml', '--backend', 'iptables'], i);
    expect(code).toBe(0);
    expect(i.out).toMatch(/smtp\s+except\s+tcp\/25 to 203\.0\.113\.254 as postfix\s+accept by default\s+accept \(connected\)/);
    expect(i.out).toMatch(/smtp\s+deny\s+tcp\/25 to 2001:db8:ffff:ffff:ffff:ffff:ffff:fffe as root\s+reject by deny smtp\s+reject \(ECONNREFUSED\)/);
  });

  test('a backend that gets the owner wrong is caught: DISAGREES, and lab fails', async () => {
    const broken: Backend = {
      ...BACKENDS.nft!,
      emit(ir, o) {
        const a = BACKENDS.nft!.emit(ir, o);
        return a.value ? { ...a, value: { ...a.value, text: a.value.text.replace(/meta skuid/g, 'meta skgid') } } : a;
      },
    };
    const yaml = 'version: 1\ndefault: reject\nallow:\n  - name: web\n    reason: r\n    user: www-data\n    to: [192.0.2.80]\n    ports: [tcp/80]\n';
    const { loaded, accounts, identities, hosts } = await loadForLab('p.yaml', yaml, { now: NOW, accounts: { ...ACCOUNTS, primaryGroup: new Map([[33, 4_100_033]]) } });
    const r = await runLab(loaded, accounts, identities, { execer: realExecer(), targets: ['nft'], backends: { nft: broken } });
    expect(labOk(r)).toBe(false);
    const text = renderLabText('p.yaml', { ...r, hosts, identities }, loaded.sources);
    expect(text).toMatch(/web\s+allow\s+tcp\/80 to 192\.0\.2\.80 as www-data\s+accept by allow web\s+reject \(ECONNREFUSED\)\s+DISAGREES/);
    expect(text).toMatch(/DISAGREE with explain/);
  });

  test('SIGINT removes the namespaces of an interrupted run', async () => {
    const child = spawn(process.execPath, ['--import', './test/kernel/fixtures/register-ts.mjs', 'test/kernel/fixtures/interrupt-child.ts'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (b: Buffer) => (err += b));
    const line = await new Promise<string>((resolve, reject) => {
      let buf = '';
      child.stdout.on('data', (b: Buffer) => {
        buf += b;
        if (buf.includes('\n')) resolve(buf.split('\n')[0]!);
      });
      child.on('exit', (c) => reject(new Error(`child exited ${c}: ${err}`)));
    });
    const names = line.split(' ').slice(1);
    expect(names).toHaveLength(2);
    const x = realExecer();
    expect(await listNetns(x)).toEqual(expect.arrayContaining(names));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_c, sig) => resolve(sig)));
    child.kill('SIGINT');
    expect(await exited).toBe('SIGINT');
    const left = await listNetns(x);
    expect(names.filter((n) => left.includes(n))).toEqual([]);
    expect(err).toMatch(/SIGINT: removing lab network namespaces/);
  });
});
