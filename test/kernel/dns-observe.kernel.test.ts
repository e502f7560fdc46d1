/**
 * Observe with names, against the real kernel and the real forwarder:
 *
 *   audit policy with dns.proxy → a program as uid 4100202 resolves names
 *   through the forwarder and connects (the kernel logs what enforce would
 *   deny) → `stats` shows the names the forwarder answered and refused (its
 *   log in the state directory) → `learn --write` proposes the names, and a
 *   wildcard for the crowded CDN, instead of the addresses → the same policy
 *   in enforce mode admits the program's connections to the addresses it is
 *   answered NOW (the fake authority rotates them on every query, so the
 *   addresses learned from are mostly gone).
 *
 * As in observe-roundtrip.kernel.test.ts, netfilter logs from a namespace
 * other than the initial one only with `net.netfilter.nf_log_all_netns = 1`
 * (a sysctl, not a firewall change; restored afterwards), and this test reads
 * only lines with a log prefix of its own from the shared ring buffer.
 *
 *   host namespace (lab host)                       world namespace
 *   egress apply (compiled CLI, EGRESS_STATE_DIR)   fake authority on 192.0.2.53 / 2001:db8::53
 *   forwarder on 127.0.0.153:153, [::1]:153         tcp/443 answered on every documentation address
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { expect, test } from 'vitest';
import { main } from '../../src/cli/main.js';
import type { Io } from '../../src/cli/io.js';
import { uniqueTag } from '../../src/kernel/netns.js';
import { fixedResolver, NOW } from '../helpers.js';
import { dnsHostCommands, useDnsWorld } from './dns-env.js';
import { useLogAllNetns } from './log-all-netns.js';
import { kernelDescribe, useKernel } from './harness.js';
import { jsonResult } from '../json.js';
const UID = 4_100_202;
/** Named by no rule: forwarded, logged as dns-answer. Three CDN names (→ a wildcard) and one other name. */
const CDN = ['a.cdn.allowed.test', 'b.cdn.allowed.test', 'c.d.cdn.allowed.test'];
const OTHER = 'api.partner.test';

function policy(prefix: string): string {
  return `# names round trip: audit first
version: 1
mode: audit
default: reject
dns:
  proxy: true
  upstream: [192.0.2.53]
  grace: 60s
log:
  prefix: "${prefix}"
  rate: 1000/second   # the probes come in a burst: log every one
allow:
  - name: mirror
    reason: a name a rule already names
    to: [rot.allowed.test]
    ports: [tcp/443]
deny:
  - name: ads
    reason: refused at DNS
    to: [unlisted.test]
`;
}

function io(cwd: string, stateDir: string): Io & { out: string; err: string } {
  const o = { out: '', err: '' };
  return Object.assign(o, {
    stdout: (s: string) => void (o.out += s),
    stderr: (s: string) => void (o.err += s),
    env: { EGRESS_STATE_DIR: stateDir },
    cwd,
    resolver: fixedResolver(),
    now: NOW,
  });
}

kernelDescribe('names from the DNS forwarder: audit → stats → learn → enforce', () => {
  const env = useKernel();
  const world = useDnsWorld(env, 'dns-observe');
  useLogAllNetns(env);

  test('stats names the forwarder’s answers; learn proposes the names and a wildcard; enforced, they admit the rotated addresses', async () => {
    const host = await env.world.addHost();
    const dir = mkdtempSync(join(tmpdir(), 'egress-dnsobs-'));
    const stateDir = join(dir, 'state');
    const file = join(dir, 'policy.yaml');
    const prefix = `EGR${uniqueTag()} `;
    const { egress, probe } = dnsHostCommands(env, world.cli(), host.ns, stateDir, UID);
    try {
      writeFileSync(file, policy(prefix));
      const a = await egress(['apply', file]);
      expect(a.code, a.stderr + a.stdout).toBe(0);

      // 1. Audit: every connection is made; those to unnamed names' addresses are logged as would-deny.
      const first = await probe([...CDN, OTHER, 'rot.allowed.test', 'unlisted.test']);
      expect(first.failed).toEqual([]);
      expect(first.errors).toEqual({ 'unlisted.test': 'EREFUSED' });
      const unnamed = (CDN.length * 2 + 1) * 2; // CDN names: 2 A + 2 AAAA; others: 1 + 1
      expect(first.ok).toBe(unnamed + 4);

      // 2. stats: the names section from the forwarder's log in the state directory (written after each answer: wait for it).
      const statsJson = async () => {
        const s = io(dir, stateDir);
        expect(await main(['stats', '--kmsg', '--prefix', prefix, '--json'], s), s.err).toBe(0);
        return jsonResult(s.out, 'stats', 0);
      };
      let stats = await statsJson();
      // Every record: forwarded and published answers, and the two refusals (A and AAAA of unlisted.test).
      const complete = (j: typeof stats) => j.connections >= unnamed && (j.names?.answers ?? 0) >= (CDN.length + 2) * 2 && (j.names?.refusals ?? 0) >= 2;
      for (let i = 0; i < 100 && !complete(stats); i++) {
        await new Promise((r) => setTimeout(r, 100));
        stats = await statsJson();
      }
      expect(stats.connections).toBe(unnamed);
      const top = new Map((stats.names.top as { name: string; answers: number; published: number; rules: string[]; users: { uid: number }[] }[]).map((n) => [n.name, n]));
      // The asker's uid is read from /proc/net while the answer is on its way; a forwarded answer does not wait for it, so it may be missing.
      for (const n of [...CDN, OTHER]) {
        expect(top.get(n), n).toMatchObject({ answers: 2, published: 0 });
        expect(top.get(n)!.users.map((u) => u.uid).filter((u) => u !== UID), n).toEqual([]);
      }
      expect([...top.values()].some((n) => n.users.length > 0)).toBe(true);
      expect(top.get('rot.allowed.test')).toMatchObject({ answers: 2, published: 2, rules: ['mirror'] });
      expect(stats.names.refused).toEqual([expect.objectContaining({ name: 'unlisted.test', refused: 2, rules: ['ads'] })]);
      expect(stats.names.lines.malformed).toBe(0);

      // 3. learn: names (and the wildcard) instead of the addresses, verified, merged into the file.
      const l = io(dir, stateDir);
      expect(await main(['learn', '--kmsg', '--prefix', prefix, '--policy', file, '--write', '--json'], l), l.err).toBe(0);
      const learned = jsonResult(l.out, 'learn', 0);
      expect(learned).toMatchObject({ verified: { stillDenied: [] } }); // and ok: jsonResult checked it against exit 0
      const added = parse(readFileSync(file, 'utf8')).allow.slice(1) as { to: string[]; ports: string[]; user: number }[];
      // One user, one port: one rule, the wildcard for the CDN's names and the other name.
      expect(added.map((r) => [[...r.to].sort(), r.ports, r.user])).toEqual([[['*.cdn.allowed.test', OTHER], ['tcp/443'], UID]]);
      // The addresses the program connected to the first time are not what it is told now.
      const learnedFrom = new Set(first.answered);

      // 4. Enforce: the same names, answered with new addresses, are admitted; a name nobody learned is not.
      writeFileSync(file, readFileSync(file, 'utf8').replace('mode: audit', 'mode: enforce'));
      const e = await egress(['apply', file]);
      expect(e.code, e.stderr + e.stdout).toBe(0);
      const again = await probe([...CDN, 'e.cdn.allowed.test', OTHER]);
      expect(again.failed).toEqual([]);
      expect(again.ok).toBe((CDN.length + 1) * 4 + 2);
      expect(again.answered.filter((x) => !learnedFrom.has(x)).length).toBeGreaterThan(0);
      const stranger = await probe(['stranger.test']);
      expect(stranger.ok).toBe(0);
      expect(stranger.failed.length).toBe(2);
    } finally {
      await egress(['remove']).catch(() => undefined);
      await host.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 240_000);
});
