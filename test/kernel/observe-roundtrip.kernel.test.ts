/**
 * The rollout round trip against the real kernel, per Linux backend:
 *
 *   audit-mode policy → real traffic (probes as several uids, IPv4 and IPv6,
 *   TCP, UDP, ICMP) → the kernel's own LOG lines, read from /dev/kmsg →
 *   `egress stats` counts them → `egress learn --write` → the same policy in
 *   enforce mode admits every flow it learned from, and the deny rule still
 *   rejects what it denied.
 *
 * netfilter only logs from a namespace other than the initial one with
 * `net.netfilter.nf_log_all_netns = 1`: a sysctl of the root namespace, but
 * not a firewall change; it is set for this file and restored afterwards
 * (log-all-netns.ts). The lines land in the host's ring buffer, so each test uses a log prefix
 * of its own and reads only that (other tests may log at the same time).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { main } from '../../src/cli/main.js';
import { loadPolicyText } from '../../src/index.js';
import { uniqueTag } from '../../src/kernel/netns.js';
import { LINUX_TARGETS } from '../../src/backends/types.js';
import { probeText, type Probe } from '../../src/lab/probe.js';
import { ACCOUNTS, captureIo, fixedResolver, NOW } from '../helpers.js';
import { useLogAllNetns } from './log-all-netns.js';
import { kernelDescribe, probePolicy, useKernel } from './harness.js';
import { jsonResult } from '../json.js';

function policy(prefix: string): string {
  return `# round trip: audit first
version: 1
mode: audit
default: reject
log:
  prefix: "${prefix}"
  rate: 1000/second   # the probes come in a burst: log every one
allow:
  - name: dns
    reason: the resolver is already allowed
    to: [192.0.2.53]
    ports: [udp/53]
deny:
  - name: blocked
    reason: a destination that must stay denied
    to: [203.0.113.250]
`;
}

const who = (name: string) => {
  const uid = ACCOUNTS.users.get(name)!;
  return { uid, gid: ACCOUNTS.primaryGroup.get(uid)! };
};

const PROBES: Probe[] = [
  { proto: 'tcp', dst: '198.51.100.10', port: 443, ...who('www-data') },
  { proto: 'tcp', dst: '198.51.100.11', port: 443, ...who('www-data') },
  { proto: 'udp', dst: '203.0.113.20', port: 123, ...who('root') },
  { proto: 'icmp', dst: '2001:db8:5::20', ...who('root') },
  { proto: 'tcp', dst: '2001:db8:5::30', port: 8443, ...who('appuser') },
  { proto: 'tcp', dst: '203.0.113.250', port: 80, ...who('root') },
  { proto: 'udp', dst: '192.0.2.53', port: 53, ...who('root') },
];

const io = (cwd: string) => captureIo(cwd);

kernelDescribe('observe round trip: audit → kernel log → stats → learn → enforce', () => {
  const env = useKernel();
  useLogAllNetns(env);

  test.each(LINUX_TARGETS)('%s', async (target) => {
    const dir = mkdtempSync(join(tmpdir(), 'egress-roundtrip-'));
    try {
      // A prefix of our own: this test reads only its lines from the shared ring buffer.
      const prefix = `EGR${uniqueTag()} `;
      const file = join(dir, 'policy.yaml');
      writeFileSync(file, policy(prefix));
      const load = async () => {
        const l = await loadPolicyText(file, readFileSync(file, 'utf8'), { resolver: fixedResolver(), now: NOW, baseDir: dir });
        expect(l.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
        return l;
      };

      // 1. Audit: nothing is blocked, the kernel logs what enforce would deny.
      const audit = await probePolicy(env, await load(), target, PROBES, ACCOUNTS);
      expect(audit.filter((c) => !c.agree).map((c) => `${probeText(c.result.probe)}: kernel ${c.kernel}, explain ${c.expected}`)).toEqual([]);
      expect(audit.every((c) => c.kernel === 'accept')).toBe(true);

      // 2. stats over the kernel's own lines.
      const s = io(dir);
      expect(await main(['stats', '--kmsg', '--prefix', prefix, '--json'], s)).toBe(0);
      const stats = jsonResult(s.out, 'stats', 0);
      expect({ mode: stats.mode, connections: stats.connections, malformed: stats.lines.malformed }).toEqual({ mode: 'audit', connections: 6, malformed: 0 });
      expect(stats.rules.map((r: { rule?: string; logged?: string; connections: number }) => [r.rule ?? r.logged, r.connections])).toEqual([
        ['-', 5],
        ['blocked', 1],
      ]);

      // 3. learn, merged into the file.
      const l = io(dir);
      expect(await main(['learn', '--kmsg', '--prefix', prefix, '--policy', file, '--write', '--json'], l)).toBe(0);
      const learned = jsonResult(l.out, 'learn', 0);
      expect(learned).toMatchObject({ verified: { stillDenied: [] } }); // and ok: jsonResult checked it against exit 0
      expect(learned.notLearned).toEqual([expect.objectContaining({ to: '203.0.113.250', why: 'denied-by-rule', rules: ['blocked'] })]);
      expect(readFileSync(file, 'utf8')).toMatch(/^# round trip: audit first\n/);

      // 4. Enforce the policy with the learned rules: the same traffic passes, the deny still rejects.
      writeFileSync(file, readFileSync(file, 'utf8').replace('mode: audit', 'mode: enforce'));
      const enforce = await probePolicy(env, await load(), target, PROBES, ACCOUNTS);
      expect(enforce.filter((c) => !c.agree).map((c) => `${probeText(c.result.probe)}: kernel ${c.kernel}, explain ${c.expected}`)).toEqual([]);
      expect(enforce.map((c) => [probeText(c.result.probe), c.kernel])).toEqual(PROBES.map((p) => [probeText(p), p.dst === '203.0.113.250' ? 'reject' : 'accept']));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
