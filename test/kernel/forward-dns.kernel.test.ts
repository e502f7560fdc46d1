/**
 * Names that follow DNS, for containers (SPEC §5 and §6): under `dns.proxy`,
 * a governed container's DNS to any address goes to egress's forwarder on
 * the host (redirected in prerouting to the address of the bridge it came
 * in on), which publishes the answers into the rule's sets before the
 * container gets them. So a container reaches a name's rotating addresses
 * and nothing else, a deny rule's name is REFUSED, DNS over TLS is
 * rejected, and nothing outside the host reaches the forwarder's port.
 */
import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { realExecer, type Started } from '../../src/kernel/exec.js';
import { sysctl, uniqueTag, writeNetnsEtc } from '../../src/kernel/netns.js';
import { rejectForm, runProbes, type Probe } from '../../src/lab/probe.js';
import { WORLD_DNS_SOURCE, type WorldZone } from '../../src/lab/world-dns.js';
import type { Status } from '../../src/kernel/status.js';
import { kernelDescribe, useRootGuard } from './harness.js';
import { buildCli } from './lifecycle-env.js';
import { egressIn, FWD, forwardWorld, outcomeLines, expectedLines, probeFrom, flowProbes, type EgressInHost, type ForwardWorld } from './forward-env.js';
import { resultOf } from '../json.js';

const RESOLVER = '203.0.113.254';
const ZONE: WorldZone = {
  servers: [{ address: RESOLVER, port: 53 }],
  names: {
    'a.cdn.example.com': { a: ['203.0.113.77', '203.0.113.78', '203.0.113.79'], aaaa: ['2001:db8:ff::77', '2001:db8:ff::78', '2001:db8:ff::79'] },
    'bad.example.com': { a: ['203.0.113.66'], aaaa: ['2001:db8:ff::66'] },
  },
  other: { a: ['203.0.113.250'], aaaa: ['2001:db8:ff::250'] },
};

const POLICY = `version: 1
default: reject
dns: { proxy: true, upstream: [${RESOLVER}] }
forward:
  sources:
    test: { interfaces: ["br-test"], networks: [198.51.100.0/25, "2001:db8:c1::/64"] }
allow:
  - name: cdn
    reason: images come from the CDN, whatever addresses it rotates through
    from: [test]
    to: ["*.cdn.example.com"]
    ports: [tcp/80]
deny:
  - name: bad
    reason: never this one
    from: [host, test]
    to: [bad.example.com]
`;

const x = realExecer();

kernelDescribe('forward scope: containers follow names through the forwarder (dns.proxy)', () => {
  useRootGuard(x);
  let cli = '';
  let w: ForwardWorld;
  let authority: Started | undefined;
  let eg: EgressInHost;
  beforeAll(async () => {
    cli = buildCli('forward-dns');
    w = await forwardWorld(x, uniqueTag(), 'none');
    await sysctl(x, w.ns.h, { 'net.ipv4.icmp_ratelimit': 0, 'net.ipv6.icmp.ratelimit': 0 });
    // ct1 asks the "public" resolver in the world, as a container with the host's resolv.conf copied in would.
    writeNetnsEtc(w.ns.ct1, { 'resolv.conf': `nameserver ${RESOLVER}\n` });
    authority = x.start(process.execPath, ['--input-type=module', '-e', WORLD_DNS_SOURCE], { netns: w.ns.w });
    authority.write(JSON.stringify(ZONE) + '\n');
    expect(await authority.nextLine()).toBe('ready');
    eg = egressIn(w, cli);
    await eg.apply(POLICY, 'nft');
  }, 180_000);
  afterAll(async () => {
    await eg?.run(['remove']);
    eg?.close();
    await authority?.stop();
    await w?.close();
    if (cli) rmSync(dirname(dirname(cli)), { recursive: true, force: true });
  }, 60_000);

  const pool = (fam: 'a' | 'aaaa') => ZONE.names['a.cdn.example.com']![fam];
  const nameProbe = (name: string, dst: string): Probe => ({ proto: 'tcp', dst, port: 80, name, uid: 0, gid: 0 });

  test('a container reaches every address the forwarder answered it for a name, over IPv4 and IPv6, 20 lookups in a row', async () => {
    const probes = Array.from({ length: 10 }, () => [nameProbe('a.cdn.example.com', pool('a')[0]!), nameProbe('a.cdn.example.com', pool('aaaa')[0]!)]).flat();
    for (const p of probes) {
      // One at a time: each lookup gets the next addresses of the rotation, and each must be admitted before the answer arrives.
      const [r] = await runProbes(x, w.ns.ct1, [p], { pool: (q) => (q.dst.includes(':') ? pool('aaaa') : pool('a')) });
      expect(`${r!.outcome} ${r!.detail}`).toMatch(/^accepted /);
    }
    const s = resultOf((await eg.run(['status', '--json'])).stdout, 'status');
    expect(s.dns?.running).toBe(true);
    expect(s.dns?.learned.reduce((n, l) => n + l.elements, 0)).toBeGreaterThan(0);
  });

  test('an address of the name that no answer gave it, and an unlisted address, are rejected', async () => {
    const rs = await probeFrom(w, 'ct1', flowProbes(['203.0.113.80', '2001:db8:ff::80', FWD.unlisted.v4, FWD.unlisted.v6], { tcp: [80], icmp: false }));
    expect(outcomeLines(rs)).toEqual(expectedLines(rs, 'rejected'));
  });

  test("a deny rule's name is answered REFUSED to the container; DNS over TLS to the resolver is rejected", async () => {
    const [refused] = await runProbes(x, w.ns.ct1, [nameProbe('bad.example.com', '203.0.113.66')], { pool: () => ['203.0.113.66'] });
    expect(refused!.outcome).toBe('refused');
    // udp/853: the world listens on nothing there, so a datagram that got through would come back port-unreachable; egress's reject is admin-prohibited.
    const dot = await probeFrom(w, 'ct1', flowProbes([RESOLVER, '2001:db8:ff::254'], { udp: [853], icmp: false }));
    expect(dot.map((r) => `${r.probe.dst} ${r.outcome} ${rejectForm(r)}`)).toEqual([`${RESOLVER} rejected admin-prohibited`, '2001:db8:ff::254 rejected admin-prohibited']);
  });

  test("nothing outside the host reaches the forwarder's port on the bridge address (only redirected queries do)", async () => {
    // From the world, straight at the host's uplink and bridge addresses, tcp/153: dropped (the forwarder listens on the
    // bridge address, and would accept; nothing listens on the uplink's, which would reset).
    const rs = await probeFrom(w, 'w', flowProbes([FWD.h.v4, FWD.ct1.net.v4.gateway, FWD.h.v6, FWD.ct1.net.v6.gateway], { tcp: [153], icmp: false }));
    expect(outcomeLines(rs)).toEqual(expectedLines(rs, 'dropped'));
  });
});
