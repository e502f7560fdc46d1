/**
 * `dns.proxy` through the shipped CLI, with the kernel as the oracle: apply
 * starts the DNS forwarder (detached, root with group egress-dns) and loads
 * the redirect; a program that asks any server on port 53 is answered by the
 * forwarder, and connects to what it was told; addresses nobody was told
 * stay blocked; re-applying the same policy keeps the same forwarder; a
 * killed forwarder fails closed (lookups fail, nothing new admitted, what it
 * learned stays) and the next egress command brings it back with those
 * elements; remove stops it and DNS goes straight to the server again.
 *
 *   host namespace (lab host)                       world namespace
 *   egress apply (compiled CLI, EGRESS_STATE_DIR)   fake authority on 192.0.2.53 / 2001:db8::53
 *   forwarder on 127.0.0.153:153, [::1]:153         (rotating answers, TTL 0–1)
 *   probe as uid 4100201 asks 192.0.2.53:53         tcp/443 answered on every documentation address
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { processStartTime } from '../../src/kernel/lock.js';
import { kernelDescribe, useKernel } from './harness.js';
import { dnsHostCommands, useDnsWorld } from './dns-env.js';
import { until } from './lifecycle-env.js';

const UID = 4_100_201;
const NEVER = ['198.51.100.250', '2001:db8:1::8001'];

const POLICY = `version: 1
default: reject
dns:
  proxy: true
  upstream: [192.0.2.53]
  grace: 60s
allow:
  - name: cdn
    reason: the rotating CDN
    to: ["*.cdn.allowed.test", rot.allowed.test]
    ports: [tcp/443]
deny:
  - name: ads
    reason: refused at DNS
    to: [unlisted.test]
`;

kernelDescribe('dns.proxy through apply and remove', () => {
  const env = useKernel();
  const world = useDnsWorld(env, 'dns');

  test('apply starts the forwarder and every program is answered through it; re-apply keeps it; remove stops it', async () => {
    const host = await env.world.addHost();
    const dir = mkdtempSync(join(tmpdir(), 'egress-dnslc-'));
    const stateDir = join(dir, 'state');
    const cmds = dnsHostCommands(env, world.cli(), host.ns, stateDir, UID);
    const egress = cmds.egress;
    const probe = (names: string[]) => cmds.probe(names, NEVER);
    const pid = () => (JSON.parse(readFileSync(join(stateDir, 'dns-forwarder.pid'), 'utf8')) as { pid: number }).pid;
    try {
      writeFileSync(join(dir, 'policy.yaml'), POLICY);
      const a = await egress(['apply', join(dir, 'policy.yaml')]);
      expect(a.code, a.stderr + a.stdout).toBe(0);
      const first = pid();
      expect(processStartTime(first)).toBeDefined();

      const names = Array.from({ length: 30 }, (_, i) => (i % 3 === 0 ? 'rot.allowed.test' : `n${i}.${'d'.repeat(1 + (i % 2))}.cdn.allowed.test`));
      const p = await probe([...names, 'unlisted.test']);
      expect(p.failed).toEqual([]);
      expect(p.errors).toEqual({ 'unlisted.test': 'EREFUSED' });
      expect(p.answered.length).toBeGreaterThanOrEqual(names.length * 2 * 2); // two A and two AAAA a name
      expect(p.ok).toBe(p.answered.length);
      expect(p.errors).toEqual({ 'unlisted.test': 'EREFUSED' });
      expect(Object.values(p.never).every((v) => v === 'ECONNREFUSED')).toBe(true);
      // The redirect counted the probe's queries; the guard let none past the forwarder.
      const counters = await env.x.run('nft', ['list', 'counters', 'table', 'inet', 'egress'], { netns: host.ns });
      expect(Number(/counter dns_redirect \{\s*packets (\d+)/.exec(counters.stdout)?.[1])).toBeGreaterThanOrEqual(names.length * 2);

      // The forwarder's own counters reach status (it writes them every 2 s).
      let seen = '';
      // Wait for a snapshot written after the probe's last query (the refused one comes last).
      const countsIn = (t: string) => /^dns: +(\d+) queries, (\d+) answered, (\d+) refused/m.exec(t)?.slice(1, 4).map(Number) ?? [-1, -1, -1];
      const complete = (t: string) => countsIn(t)[1]! >= names.length * 2 && countsIn(t)[2]! >= 1;
      for (let i = 0; i < 100 && !complete(seen); i++) {
        if (i) await new Promise((r) => setTimeout(r, 100));
        seen = (await egress(['status'])).stdout;
      }
      const cm = /^dns: +(\d+) queries, (\d+) answered, (\d+) refused, (\d+) SERVFAIL \((\d+) hold timeouts\), (\d+) malformed, (\d+) addresses published; (\d+) packets bypassing/m.exec(seen);
      expect(cm, seen).not.toBeNull();
      const [queries, answered, refused, servfail, holds, malformed, published] = cm!.slice(1, 8).map(Number);
      expect(queries).toBeGreaterThanOrEqual(names.length * 2);
      expect(answered).toBeGreaterThanOrEqual(names.length * 2);
      expect(refused).toBeGreaterThanOrEqual(1);
      expect([servfail, holds, malformed]).toEqual([0, 0, 0]);
      // Each address the program was told was published at least once (held, the first time); a later answer naming
      // it again may leave without holding (docs/dns-forwarder.md step 7) and is not counted again.
      expect(published).toBeGreaterThanOrEqual(new Set(p.answered).size);
      const st = await egress(['status']);
      expect(st.stdout).toMatch(new RegExp(`^dns: +forwarder running \\(pid ${first}\\), 3 names, upstream 192\\.0\\.2\\.53:53; learned allow_cdn_v4_dns \\d+, allow_cdn_v6_dns \\d+$`, 'm'));

      // Re-applying the same policy: same forwarder, what it learned kept, nothing fails meanwhile.
      const again = await egress(['apply', join(dir, 'policy.yaml')]);
      expect(again.code, again.stderr).toBe(0);
      expect(pid()).toBe(first);
      expect((await probe(names.slice(0, 6))).failed).toEqual([]);

      // Forwarder killed: fail closed. Lookups fail, no new address is admitted; what it learned stays in the kernel.
      process.kill(first, 'SIGKILL');
      await until(() => processStartTime(first) === undefined, `the killed forwarder ${first} is still there`);
      const learned = (await egress(['status'])).stdout;
      expect(learned).toMatch(/^dns: +forwarder NOT RUNNING/m);
      const down = await probe(['rot.allowed.test', 'x.cdn.allowed.test']);
      expect(down.answered).toEqual([]);
      expect(Object.keys(down.errors).sort()).toEqual(['rot.allowed.test', 'x.cdn.allowed.test']);
      expect(Object.values(down.never).every((v) => v === 'ECONNREFUSED')).toBe(true);
      // The next egress command starts it again; the learned elements survived (egress keeps them across the reload).
      const back = await egress(['apply', join(dir, 'policy.yaml')]);
      expect(back.code, back.stderr).toBe(0);
      const second = pid();
      expect(second).not.toBe(first);
      const count = (t: string) => Number(/allow_cdn_v4_dns (\d+)/.exec(t)?.[1]);
      expect(count(learned)).toBeGreaterThan(0);
      expect(count((await egress(['status'])).stdout)).toBe(count(learned));
      expect((await probe(names.slice(0, 3))).failed).toEqual([]);

      const rm = await egress(['remove']);
      expect(rm.code, rm.stderr).toBe(0);
      expect(processStartTime(second)).toBeUndefined();
      // Name service as before: the query goes straight to the server, which answers even the name the policy refused.
      const after = await probe(['unlisted.test']);
      expect(after.errors).toEqual({});
      expect(after.answered.length).toBe(2);
    } finally {
      await egress(['remove']).catch(() => undefined);
      await host.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 240_000);
});
