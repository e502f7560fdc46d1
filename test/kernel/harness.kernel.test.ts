/**
 * The harness itself, with hand-written rulesets (no backend involved): the
 * world answers on whole prefixes, and each kernel outcome (accept, reject by
 * RST or ICMP, drop) is classified as such over both families, as the
 * right uid.
 */
import { expect, test } from 'vitest';
import { existsSync } from 'node:fs';
import { listNetns, NETNS_ETC } from '../../src/kernel/netns.js';
import { runProbes, rejectForm, type Probe, type ProbeResult } from '../../src/lab/probe.js';
import { kernelDescribe, loadInto, useKernel } from './harness.js';

const ROOT = { uid: 0, gid: 0 };
const U = { uid: 4_100_001, gid: 4_100_001 };

const outcomes = (rs: ProbeResult[]) => rs.map((r) => `${r.probe.proto} ${r.probe.dst}${r.probe.port ? `:${r.probe.port}` : ''} uid ${r.probe.uid}: ${r.outcome} ${r.detail}`);

kernelDescribe('kernel harness', () => {
  const env = useKernel();

  test('the world answers on every documentation prefix, TCP, UDP and ICMP, both families', async () => {
    const dsts = ['192.0.2.0', '192.0.2.1', '192.0.2.255', '198.51.100.77', '203.0.113.254', '2001:db8::', '2001:db8::1', '2001:db8:ffff:ffff:ffff:ffff:ffff:ffff', '2001:db8:1234::5'];
    const probes: Probe[] = dsts.flatMap((dst) => [
      { proto: 'tcp' as const, dst, port: 443, ...ROOT },
      { proto: 'udp' as const, dst, port: 53, ...U },
      { proto: 'icmp' as const, dst, ...U },
    ]);
    await env.world.listen({ tcp: [443], udp: [53] });
    const host = await env.world.addHost();
    try {
      const rs = await runProbes(env.x, host.ns, probes);
      expect(outcomes(rs).filter((l) => !l.includes(': accepted'))).toEqual([]);
    } finally {
      await host.close();
    }
  });

  // A regression: the world once answered from a short-lived socket bound to
  // the probed address, which for its lifetime took the datagrams of other
  // probes to the same address and port, so those saw no reply.
  test('concurrent UDP probes to one address and port, from two hosts and several uids, all get their reply', async () => {
    await env.world.listen({ udp: [5353] });
    const hosts = [await env.world.addHost(), await env.world.addHost()];
    try {
      const probes: Probe[] = [];
      for (let round = 0; round < 4; round++)
        for (const dst of ['192.0.2.9', '2001:db8::9'])
          for (let u = 0; u < 3; u++) probes.push({ proto: 'udp', dst, port: 5353, uid: 4_100_001 + u, gid: 4_100_001 + u });
      for (let round = 0; round < 5; round++) {
        const rs = (await Promise.all(hosts.map((h) => runProbes(env.x, h.ns, probes)))).flat();
        expect(outcomes(rs).filter((l) => !l.includes(': accepted'))).toEqual([]);
      }
    } finally {
      for (const h of hosts) await h.close();
    }
  });

  // A regression: a probe's silence clock started when the prober began the
  // probe, not when its packet left. Each ICMP probe spawns ping, and spawning
  // blocks the prober's event loop, so a UDP probe queued before many ICMP
  // probes sent its datagram hundreds of ms late and was called dropped a few
  // ms after it left. That is what lost the :53 replies of the first test
  // under load. Here 300 spawns in one go block the prober for far longer than
  // the 400 ms timeout (measured: ~3 ms a spawn on an idle 2-core machine).
  test('a UDP or TCP probe whose packet leaves late, behind 300 ping spawns, still waits the full timeout for its answer', async () => {
    await env.world.listen({ tcp: [443], udp: [53] });
    const host = await env.world.addHost();
    try {
      const probes: Probe[] = [
        { proto: 'udp', dst: '192.0.2.53', port: 53, ...U },
        { proto: 'udp', dst: '2001:db8::53', port: 53, ...U },
        { proto: 'tcp', dst: '192.0.2.53', port: 443, ...U },
        { proto: 'tcp', dst: '2001:db8::53', port: 443, ...U },
        ...Array.from({ length: 300 }, (_, i): Probe => ({ proto: 'icmp', dst: i % 2 ? `2001:db8::1:${i.toString(16)}` : `198.51.100.${i % 256}`, ...U })),
      ];
      const rs = await runProbes(env.x, host.ns, probes, { concurrency: probes.length });
      expect(outcomes(rs).filter((l) => !l.includes(': accepted'))).toEqual([]);
    } finally {
      await host.close();
    }
  });

  test('refuses destinations outside the documentation prefixes', async () => {
    for (const dst of ['10.0.0.1', '169.254.169.254', '8.8.8.8', '2001:db9::1', 'fd00::1'])
      await expect(runProbes(env.x, 'unused', [{ proto: 'tcp', dst, port: 80, ...ROOT }])).rejects.toThrow(/outside the documentation prefixes/);
  });

  const nftRuleset = `table inet t {
  chain out {
    type filter hook output priority 0; policy accept;
    ct state established,related accept
    ip daddr 192.0.2.10 meta l4proto tcp reject with tcp reset
    ip daddr 192.0.2.10 reject with icmpx type admin-prohibited
    ip6 daddr 2001:db8::10 meta l4proto tcp reject with tcp reset
    ip6 daddr 2001:db8::10 reject with icmpx type admin-prohibited
    ip daddr 192.0.2.20 drop
    ip6 daddr 2001:db8::20 drop
    meta skuid ${U.uid} ip daddr 192.0.2.30 drop
    meta skuid ${U.uid} ip6 daddr 2001:db8::30 drop
  }
}
`;
  const iptablesRuleset = (v: 4 | 6) => {
    const a = (n: number) => (v === 4 ? `192.0.2.${n}` : `2001:db8::${n}`);
    const icmp = v === 4 ? 'icmp-admin-prohibited' : 'icmp6-adm-prohibited';
    return `# egress: ipv${v}
*filter
:T - [0:0]
-A OUTPUT -j T
-A T -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A T -d ${a(10)} -p tcp -j REJECT --reject-with tcp-reset
-A T -d ${a(10)} -j REJECT --reject-with ${icmp}
-A T -d ${a(20)} -j DROP
-A T -d ${a(30)} -m owner --uid-owner ${U.uid} -j DROP
COMMIT
`;
  };

  test.each([
    ['nft', nftRuleset],
    ['iptables', iptablesRuleset(4) + iptablesRuleset(6)],
  ] as const)('classifies accept, reject (RST / admin-prohibited) and drop, per uid: %s', async (target, text) => {
    await env.world.listen({ tcp: [80], udp: [123] });
    const host = await env.world.addHost();
    try {
      await loadInto(env.x, host.ns, target, text);
      const want: [string, string][] = [];
      const probes: Probe[] = [];
      for (const [dst10, dst20, dst30, dst40] of [
        ['192.0.2.10', '192.0.2.20', '192.0.2.30', '192.0.2.40'],
        ['2001:db8::10', '2001:db8::20', '2001:db8::30', '2001:db8::40'],
      ] as const) {
        const add = (p: Probe, outcome: string, form?: string) => {
          probes.push(p);
          want.push([outcome, form ?? '']);
        };
        add({ proto: 'tcp', dst: dst10, port: 80, ...ROOT }, 'rejected', 'tcp-reset');
        add({ proto: 'udp', dst: dst10, port: 123, ...U }, 'rejected', 'admin-prohibited');
        add({ proto: 'icmp', dst: dst10, ...U }, 'rejected', 'admin-prohibited');
        add({ proto: 'tcp', dst: dst20, port: 80, ...U }, 'dropped');
        add({ proto: 'udp', dst: dst20, port: 123, ...ROOT }, 'dropped');
        add({ proto: 'icmp', dst: dst20, ...ROOT }, 'dropped');
        add({ proto: 'tcp', dst: dst30, port: 80, ...U }, 'dropped');
        add({ proto: 'tcp', dst: dst30, port: 80, ...ROOT }, 'accepted');
        add({ proto: 'udp', dst: dst30, port: 123, ...ROOT }, 'accepted');
        add({ proto: 'udp', dst: dst40, port: 123, ...U }, 'accepted');
      }
      const rs = await runProbes(env.x, host.ns, probes);
      const got = rs.map((r) => [r.outcome, r.outcome === 'rejected' ? rejectForm(r) : '']);
      expect(got.map((g, i) => `${outcomes([rs[i]!])[0]} -> ${g.join(' ')}`)).toEqual(rs.map((r, i) => `${outcomes([r])[0]} -> ${want[i]!.join(' ')}`));
    } finally {
      await host.close();
    }
  });

  test('pinned names resolve through the host namespace\'s own hosts file, and a probe checks its pin first', async () => {
    await env.world.listen({ tcp: [443] });
    const host = await env.world.addHost([{ name: 'mirror.test', ipv4: ['192.0.2.5'], ipv6: ['2001:db8::5'] }]);
    try {
      expect(existsSync(`${NETNS_ETC}/${host.ns}/hosts`)).toBe(true);
      const rs = await runProbes(env.x, host.ns, [
        { proto: 'tcp', dst: '192.0.2.5', port: 443, host: 'mirror.test', ...U },
        { proto: 'tcp', dst: '2001:db8::5', port: 443, host: 'mirror.test', ...U },
        { proto: 'tcp', dst: '192.0.2.6', port: 443, host: 'mirror.test', ...U },
        { proto: 'tcp', dst: '192.0.2.7', port: 443, host: 'deb.debian.org', ...U },
      ]);
      expect(outcomes(rs)).toEqual([
        `tcp 192.0.2.5:443 uid ${U.uid}: accepted connected`,
        `tcp 2001:db8::5:443 uid ${U.uid}: accepted connected`,
        `tcp 192.0.2.6:443 uid ${U.uid}: error mirror.test resolves to 192.0.2.5 in the namespace, not 192.0.2.6`,
        // Not pinned, and the namespace's name service is files only: no DNS query leaves.
        `tcp 192.0.2.7:443 uid ${U.uid}: error deb.debian.org resolves to ENOTFOUND in the namespace, not 192.0.2.7`,
      ]);
    } finally {
      await host.close();
    }
    expect(existsSync(`${NETNS_ETC}/${host.ns}`)).toBe(false);
  });

  test('a closed host leaves no namespace behind', async () => {
    const host = await env.world.addHost();
    expect(await listNetns(env.x)).toContain(host.ns);
    await host.close();
    expect(await listNetns(env.x)).not.toContain(host.ns);
  });
});
