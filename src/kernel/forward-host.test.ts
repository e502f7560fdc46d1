import { describe, expect, test } from 'vitest';
import { fixture, fixtureHost, saves } from '../../test/kernel/forward-host-env.js';
import { fakeExecer } from './exec.js';
import {
  driftLines,
  ebpfDatapath,
  ebpfDatapathLine,
  forwardingOff,
  forwardingOffLine,
  forwardJumpDrift,
  forwardJumpPlace,
  inspectForwarding,
  interfaceMatches,
  networksOf,
  readDefaultRouteDevs,
  sideDoorLines,
  sideDoors,
  suggestSources,
  type Drift,
  type HostForwarding,
  type HostInterface,
} from './forward-host.js';
import { KernelError } from './where.js';

const names = (xs: { name: string }[]) => xs.map((x) => x.name);

/** The fixture host plus or minus some interfaces. */
function withInterfaces(h: HostForwarding, add: HostInterface[], drop: string[] = []): HostForwarding {
  return { ...h, interfaces: [...h.interfaces.filter((i) => !drop.includes(i.name)), ...add] };
}

const bridge = (name: string, ...cidrs: string[]): HostInterface => ({
  name,
  kind: 'bridge',
  up: true,
  operstate: 'UP',
  addresses: cidrs.map((c) => {
    const [address, len] = c.split('/');
    return { family: address!.includes(':') ? 'ipv6' : 'ipv4', address: address!, prefixLen: Number(len), scope: address!.startsWith('fe80') ? 'link' : 'global' };
  }),
});

describe('inspectForwarding', () => {
  const answers = (over: Record<string, { code?: number; stdout?: string; stderr?: string }> = {}) => (c: { argv: string[] }) => {
    const cmd = c.argv.slice(c.argv[0] === 'ip' && c.argv[1] === 'netns' ? 4 : 0).join(' ');
    if (over[cmd]) return over[cmd]!;
    if (cmd === 'sysctl -n net.ipv4.ip_forward') return { stdout: '1\n' };
    if (cmd === 'sysctl -n net.ipv6.conf.all.forwarding') return { stdout: '0\n' };
    if (cmd === 'ip -j -d addr show') return { stdout: fixture('ip-addr.json') };
    if (cmd === 'ip -j -4 route show default table all') return { stdout: fixture('route4.json') };
    if (cmd === 'ip -j -6 route show default table all') return { stdout: fixture('route6.json') };
    return { code: 1, stderr: `unexpected: ${cmd}` };
  };

  test('reads sysctls, links and default routes inside the namespace, read-only', async () => {
    const x = fakeExecer(answers());
    const h = await inspectForwarding(x, 'egress-t-h');
    expect(x.calls.map((c) => c.argv.join(' ')).sort()).toEqual([
      'ip netns exec egress-t-h ip -j -4 route show default table all',
      'ip netns exec egress-t-h ip -j -6 route show default table all',
      'ip netns exec egress-t-h ip -j -d addr show',
      'ip netns exec egress-t-h sysctl -n net.ipv4.ip_forward',
      'ip netns exec egress-t-h sysctl -n net.ipv6.conf.all.forwarding',
    ]);
    expect(h).toEqual(fixtureHost({ ipv4: true, ipv6: false }));
  });

  test('without a namespace it runs where egress runs', async () => {
    const x = fakeExecer(answers());
    await inspectForwarding(x);
    expect(x.calls.every((c) => c.argv[0] !== 'ip' || c.argv[1] !== 'netns')).toBe(true);
  });

  test('a kernel without IPv6 forwards no IPv6 and has no IPv6 uplink', async () => {
    const x = fakeExecer(
      answers({
        'sysctl -n net.ipv6.conf.all.forwarding': { code: 255, stderr: 'sysctl: cannot stat /proc/sys/net/ipv6/conf/all/forwarding: No such file or directory\n' },
        'ip -j -6 route show default table all': { code: 2, stderr: 'RTNETLINK answers: Address family not supported by protocol\n' },
      }),
    );
    const h = await inspectForwarding(x);
    expect(h.forwarding).toEqual({ ipv4: true, ipv6: false });
    expect(h.uplinks).toEqual({ ipv4: ['tun9', 'up0'], ipv6: [] });
  });

  test.each([
    ['ip -j -d addr show', { code: 1, stderr: 'Cannot open netlink socket' }, /ip -j -d addr show: exit 1/],
    ['ip -j -d addr show', { stdout: '[{"ifname": ' }, /unreadable JSON/],
    ['ip -j -4 route show default table all', { stdout: '{}' }, /expected a JSON array/],
    ['sysctl -n net.ipv6.conf.all.forwarding', { code: 1, stderr: 'sysctl: permission denied' }, /permission denied/],
    ['ip -j -6 route show default table all', { code: 2, stderr: 'RTNETLINK answers: Operation not permitted' }, /route show default table all: exit 2: RTNETLINK/],
  ])('a failed or unreadable %s is a KernelError', async (cmd, reply, message) => {
    const p = inspectForwarding(fakeExecer(answers({ [cmd]: reply })));
    await expect(p).rejects.toThrow(KernelError);
    await expect(p).rejects.toThrow(message);
  });
});

describe('reading ip -j', () => {
  test('interfaces: kind, state, master and addresses as captured from a host namespace', () => {
    const byName = new Map(fixtureHost().interfaces.map((i) => [i.name, i]));
    expect([...byName.keys()]).toEqual(['lo', 'up0', 'docker0', 'vethc0', 'br-3f2a9c1d7e6b', 'br-new', 'virbr0', 'vnet0', 'podman0', 'lxdbr0', 'cni0', 'cali0123456789a', 'tap9', 'vxl9', 'cilium_net', 'cilium_host', 'tun9']);
    expect(Object.fromEntries([...byName].map(([n, i]) => [n, i.kind]))).toMatchObject({ lo: 'loopback', up0: 'veth', docker0: 'bridge', vnet0: 'tap', tap9: 'tap', vxl9: 'vxlan', tun9: 'tun' });
    expect(byName.get('vethc0')).toMatchObject({ master: 'docker0', up: true });
    expect(byName.get('vnet0')!.master).toBe('virbr0');
    expect(byName.get('tap9')).toMatchObject({ up: false, operstate: 'DOWN', addresses: [] });
    expect(byName.get('br-new')!.addresses.filter((a) => a.scope === 'global')).toEqual([
      { family: 'ipv4', address: '198.51.100.129', prefixLen: 25, scope: 'global' },
      { family: 'ipv6', address: '2001:db8:b::1', prefixLen: 64, scope: 'global' },
    ]);
  });

  test.each([
    ['captured: main and a policy table', fixture('route4.json'), ['tun9', 'up0']],
    ['captured: IPv6', fixture('route6.json'), ['up0']],
    // Captured from `ip route add default nexthop via … dev a0 nexthop via … dev b0` and `ip route add unreachable default table 7`.
    [
      'multipath, and an unreachable default (nothing leaves)',
      '[{"type":"unreachable","dst":"default","table":"7","flags":[]},{"dst":"default","flags":[],"nexthops":[{"gateway":"192.0.2.1","dev":"a0","weight":1,"flags":[]},{"gateway":"192.0.2.17","dev":"b0","weight":1,"flags":[]}]}]',
      ['a0', 'b0'],
    ],
    ['an unreachable IPv6 default through lo', '[{"type":"unreachable","dst":"default","dev":"lo","metric":1024,"flags":[],"pref":"medium"}]', []],
    ['no default route', '[]', []],
    ['nothing printed', '', []],
  ])('default routes: %s', (_, json, devs) => {
    expect(readDefaultRouteDevs(json)).toEqual(devs);
  });
});

test.each([
  ['br-*', 'br-3f2a9c1d7e6b', true],
  ['br-*', 'br-', true],
  ['br-*', 'br0', false],
  ['docker0', 'docker0', true],
  ['docker0', 'docker01', false],
  ['*', 'anything', true],
  ['vir*br', 'virXbr', false],
])('interfaceMatches(%s, %s) = %s', (glob, name, want) => {
  expect(interfaceMatches(glob, name)).toBe(want);
});

describe('sideDoors', () => {
  const docker = { name: 'docker', interfaces: ['docker0', 'br-*'] };

  test('with no source: every interface that could bring workload traffic in, not lo, enslaved ports, uplinks or the eBPF devices', () => {
    expect(names(sideDoors(fixtureHost(), []))).toEqual(['docker0', 'br-3f2a9c1d7e6b', 'br-new', 'virbr0', 'podman0', 'lxdbr0', 'cni0', 'cali0123456789a', 'tap9', 'vxl9']);
  });

  test('a source covers what its globs match (br-* covers a hand-made br-new too, as nft iifname would)', () => {
    expect(names(sideDoors(fixtureHost(), [docker]))).toEqual(['virbr0', 'podman0', 'lxdbr0', 'cni0', 'cali0123456789a', 'tap9', 'vxl9']);
  });

  test('a source with networks only covers no interface', () => {
    expect(names(sideDoors(fixtureHost(), [{ name: 'gitbox', interfaces: [] }]))).toContain('docker0');
  });

  test('the suggested sources leave the interfaces no tool made', () => {
    const h = fixtureHost();
    expect(names(sideDoors(h, suggestSources(h)))).toEqual(['br-new', 'tap9', 'vxl9']);
  });

  test('what a side door says: kind, state, addresses without link-local, its ports, the forwarded families', () => {
    const doors = sideDoors(fixtureHost({ ipv4: true, ipv6: false }), []);
    expect(doors.find((d) => d.name === 'docker0')).toEqual({
      name: 'docker0',
      kind: 'bridge',
      up: true,
      operstate: 'UP',
      addresses: ['198.51.100.1/26', '2001:db8:d0::1/64'],
      ports: ['vethc0'],
      families: ['ipv4'],
    });
    expect(doors.find((d) => d.name === 'virbr0')!.ports).toEqual(['vnet0']);
    expect(doors.find((d) => d.name === 'tap9')).toMatchObject({ up: false, addresses: [], ports: [] });
  });

  test('nothing when the host forwards neither family', () => {
    const h = fixtureHost({ ipv4: false, ipv6: false });
    expect(sideDoors(h, [])).toEqual([]);
    expect(forwardingOff(h)).toBe(true);
    expect(forwardingOffLine(h)).toBe(
      'warning: the host forwards neither IPv4 nor IPv6 (net.ipv4.ip_forward=0, net.ipv6.conf.all.forwarding=0): forward rules will see no traffic',
    );
  });

  test.each([
    [{ ipv4: true, ipv6: false }, false],
    [{ ipv4: false, ipv6: true }, false],
  ])('forwarding %j is not off', (forwarding, off) => {
    expect(forwardingOff(fixtureHost(forwarding))).toBe(off);
    expect(forwardingOffLine(fixtureHost(forwarding))).toBeUndefined();
  });
});

describe('sideDoorLines', () => {
  const doors = sideDoors(fixtureHost(), [{ name: 'docker', interfaces: ['docker0', 'br-3f2a9c1d7e6b'] }]).filter((d) => ['br-new', 'tap9'].includes(d.name));
  test.each([
    [
      'warn' as const,
      [
        'warning: the host forwards IPv4 and IPv6 from br-new (bridge, 198.51.100.129/25, 2001:db8:b::1/64) and no forward source covers it: its traffic is "unlisted" (warn)',
        'warning: the host forwards IPv4 and IPv6 from tap9 (tap, down) and no forward source covers it: its traffic is "unlisted" (warn)',
      ],
    ],
    ['deny' as const, ['warning: the host forwards IPv4 and IPv6 from br-new (bridge, 198.51.100.129/25, 2001:db8:b::1/64) and no forward source covers it: its traffic is "unlisted" (deny)']],
    [undefined, ['warning: the host forwards IPv4 and IPv6 from br-new (bridge, 198.51.100.129/25, 2001:db8:b::1/64) and the policy has no forward scope: its traffic is not governed']],
  ])('unlisted: %s', (unlisted, lines) => {
    expect(sideDoorLines(doors, unlisted).slice(0, lines.length)).toEqual(lines);
  });

  test('one family', () => {
    const d = sideDoors(fixtureHost({ ipv4: false, ipv6: true }), []).find((x) => x.name === 'vxl9')!;
    expect(sideDoorLines([d], 'accept')).toEqual(['warning: the host forwards IPv6 from vxl9 (vxlan) and no forward source covers it: its traffic is "unlisted" (accept)']);
  });
});

describe('ebpfDatapath', () => {
  test('Cilium, from the captured host', () => {
    expect(ebpfDatapath(fixtureHost())).toEqual([{ kind: 'cilium', interfaces: ['cilium_net', 'cilium_host'] }]);
    expect(ebpfDatapathLine(fixtureHost())).toBe(
      'warning: an eBPF datapath is present: Cilium (cilium_net, cilium_host): forwarded traffic it routes may bypass netfilter, and forward rules would not see it',
    );
  });
  test('Calico in BPF mode', () => {
    const h = withInterfaces(fixtureHost(), [bridge('bpfin.cali'), bridge('bpfout.cali')], ['cilium_net', 'cilium_host']);
    expect(ebpfDatapath(h)).toEqual([{ kind: 'calico-bpf', interfaces: ['bpfin.cali', 'bpfout.cali'] }]);
  });
  test('none', () => {
    const h = withInterfaces(fixtureHost(), [], ['cilium_net', 'cilium_host']);
    expect(ebpfDatapath(h)).toEqual([]);
    expect(ebpfDatapathLine(h)).toBeUndefined();
  });
});

describe('suggestSources', () => {
  test('from the captured host: a hand-made br-new keeps "br-*" out of docker', () => {
    expect(suggestSources(fixtureHost())).toEqual([
      { name: 'docker', interfaces: ['docker0', 'br-3f2a9c1d7e6b'], networks: ['198.51.100.0/26', '198.51.100.64/26', '2001:db8:d0::/64'] },
      { name: 'podman', interfaces: ['podman*'], networks: ['203.0.113.32/28'] },
      { name: 'libvirt', interfaces: ['virbr*'], networks: ['203.0.113.0/28'] },
      { name: 'lxd', interfaces: ['lxdbr*'], networks: ['203.0.113.48/28'] },
      { name: 'pods', interfaces: ['cni0', 'cali*'], networks: ['203.0.113.16/28'] },
    ]);
  });

  test('without strangers, Docker gets docker0 and br-*', () => {
    const h = withInterfaces(fixtureHost(), [], ['br-new']);
    expect(suggestSources(h)[0]).toEqual({ name: 'docker', interfaces: ['docker0', 'br-*'], networks: ['198.51.100.0/26', '198.51.100.64/26', '2001:db8:d0::/64'] });
  });

  test.each([
    ['docker0 alone: br-* ahead of the first user network', [bridge('docker0', '198.51.100.1/26', 'fe80::1/64')], { name: 'docker', interfaces: ['docker0', 'br-*'], networks: ['198.51.100.0/26'] }],
    ['user networks without docker0', [bridge('br-0123456789ab', '198.51.100.65/26')], { name: 'docker', interfaces: ['br-*'], networks: ['198.51.100.64/26'] }],
    ['a bridge named like Docker but made by hand (br-lan) is not Docker', [bridge('br-lan', '192.0.2.1/24')], undefined],
    ['an enslaved virbr0-nic does not stop virbr*', [bridge('virbr0', '203.0.113.1/28'), { ...bridge('virbr0-nic'), kind: 'tap', master: 'virbr0' }], { name: 'libvirt', interfaces: ['virbr*'], networks: ['203.0.113.0/28'] }],
    ['a hand-made podman-test names podman0 instead of podman*', [bridge('podman0', '203.0.113.33/28'), bridge('podman-test')], { name: 'podman', interfaces: ['podman0'], networks: ['203.0.113.32/28'] }],
    ['CNI podman', [bridge('cni-podman0', '203.0.113.33/28')], { name: 'podman', interfaces: ['cni-podman*'], networks: ['203.0.113.32/28'] }],
    ['Incus', [bridge('incusbr0', '203.0.113.49/28', '2001:db8:1::1/64')], { name: 'incus', interfaces: ['incusbr*'], networks: ['203.0.113.48/28', '2001:db8:1::/64'] }],
    ['a veth named docker0 is not Docker', [{ ...bridge('docker0'), kind: 'veth' }], undefined],
  ])('%s', (_, ifs, want) => {
    const h: HostForwarding = { forwarding: { ipv4: true, ipv6: true }, interfaces: ifs, uplinks: { ipv4: [], ipv6: [] } };
    expect(suggestSources(h)).toEqual(want ? [want] : []);
  });

  test('networksOf: host bits cleared, link-local and host scope left out, IPv4 first, unique', () => {
    const ifs = [bridge('a', '2001:db8:d0::1/64', '198.51.100.130/25', 'fe80::1/64'), bridge('b', '198.51.100.129/25', '192.0.2.77/32', '2001:db8:d0::2/64')];
    expect(networksOf(ifs)).toEqual(['192.0.2.77/32', '198.51.100.128/25', '2001:db8:d0::/64']);
  });
});

describe('iptables: the jump to EGRESS-FWD', () => {
  test.each([
    ['plain-ok', 'FORWARD', 'FORWARD'],
    ['docker-ok', 'DOCKER-USER', 'DOCKER-USER'],
    ['not-first', 'DOCKER-USER', 'DOCKER-USER'],
  ])('forwardJumpPlace(%s) = %s / %s', (c, v4, v6) => {
    const [s4, s6] = saves(c);
    expect([forwardJumpPlace(s4).chain, forwardJumpPlace(s6).chain]).toEqual([v4, v6]);
  });

  test('an empty save (no filter table) puts it in FORWARD', () => {
    expect(forwardJumpPlace('')).toEqual({ chain: 'FORWARD' });
  });

  const v4 = { family: 'ipv4' as const };
  const v6 = { family: 'ipv6' as const };
  test.each<[string, Drift[]]>([
    ['plain-ok', []],
    ['docker-ok', []],
    [
      'docker-appeared',
      [
        { ...v4, severity: 'warning', kind: 'jump-in-forward', chain: 'EGRESS-FWD', alsoInDockerUser: false },
        { ...v6, severity: 'warning', kind: 'jump-in-forward', chain: 'EGRESS-FWD', alsoInDockerUser: false },
      ],
    ],
    [
      'not-first',
      [
        {
          ...v4,
          severity: 'warning',
          kind: 'jump-not-first',
          chain: 'EGRESS-FWD',
          in: 'DOCKER-USER',
          position: 3,
          before: ['-A DOCKER-USER -i eth0 -o docker0 -j ACCEPT', '-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT'],
        },
        { ...v6, severity: 'warning', kind: 'missing-chain', chain: 'EGRESS-FWD' },
      ],
    ],
    [
      'docker-drift',
      [
        { ...v4, severity: 'info', kind: 'docker-user-not-first', position: 2, before: ['-A FORWARD -j ts-forward'] },
        { ...v6, severity: 'info', kind: 'docker-user-not-first', before: [] },
      ],
    ],
    [
      'plain-missing',
      [
        { ...v4, severity: 'warning', kind: 'missing-jump', chain: 'EGRESS-FWD', in: 'FORWARD' },
        { ...v6, severity: 'warning', kind: 'jump-not-first', chain: 'EGRESS-FWD', in: 'FORWARD', position: 2, before: ['-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT'] },
      ],
    ],
  ])('forwardJumpDrift(%s)', (c, drifts) => {
    expect(forwardJumpDrift(...saves(c))).toEqual(drifts);
  });

  const save = (...lines: string[]) => ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD DROP [0:0]', ':OUTPUT ACCEPT [0:0]', ...lines, 'COMMIT', ''].join('\n');
  const ok6 = save(':EGRESS-FWD - [0:0]', '-A FORWARD -j EGRESS-FWD');

  test.each<[string, string, object[]]>([
    ['no filter table at all', '', [{ kind: 'missing-chain', chain: 'EGRESS-FWD' }]],
    ['a conditional jump is not the jump', save(':EGRESS-FWD - [0:0]', '-A FORWARD -i docker0 -j EGRESS-FWD'), [{ kind: 'missing-jump', chain: 'EGRESS-FWD', in: 'FORWARD' }]],
    ['a commented jump is', save(':EGRESS-FWD - [0:0]', '-A FORWARD -m comment --comment "egress forward" -j EGRESS-FWD'), []],
    ['counters (-c) are read past', save(':EGRESS-FWD - [5:300]', '[7:420] -A FORWARD -j EGRESS-FWD'), []],
    [
      'in DOCKER-USER first and left over in FORWARD',
      save(':DOCKER-USER - [0:0]', ':EGRESS-FWD - [0:0]', '-A FORWARD -j DOCKER-USER', '-A FORWARD -j EGRESS-FWD', '-A DOCKER-USER -j EGRESS-FWD'),
      [{ kind: 'jump-in-forward', chain: 'EGRESS-FWD', alsoInDockerUser: true }],
    ],
    ['rules of another table do not count', `*nat\n:DOCKER-USER - [0:0]\nCOMMIT\n${save(':EGRESS-FWD - [0:0]', '-A FORWARD -j EGRESS-FWD')}`, []],
  ])('%s', (_, s4, drifts) => {
    expect(forwardJumpDrift(s4, ok6).map(({ family, severity, ...d }) => d)).toEqual(drifts);
  });

  test('another chain name', () => {
    expect(forwardJumpDrift(save(':EGRESS-T - [0:0]', '-A FORWARD -j EGRESS-T'), ok6, 'EGRESS-T')).toEqual([{ family: 'ipv6', severity: 'warning', kind: 'missing-chain', chain: 'EGRESS-T' }]);
  });

  test('driftLines: one line per drift', () => {
    const all = ['docker-appeared', 'not-first', 'docker-drift', 'plain-missing'].flatMap((c) => forwardJumpDrift(...saves(c)));
    expect(driftLines(all)).toEqual([
      'warning: IPv4: the jump to EGRESS-FWD is in FORWARD, but chain DOCKER-USER exists now (Docker started after apply; its restart will put its rules first): re-apply to move it into DOCKER-USER',
      'warning: IPv6: the jump to EGRESS-FWD is in FORWARD, but chain DOCKER-USER exists now (Docker started after apply; its restart will put its rules first): re-apply to move it into DOCKER-USER',
      'warning: IPv4: the jump to EGRESS-FWD is rule 3 of DOCKER-USER, after "-A DOCKER-USER -i eth0 -o docker0 -j ACCEPT", "-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT": what those rules accept is not governed (re-apply to put it first)',
      'warning: IPv6: chain EGRESS-FWD is missing from the filter table: forwarded IPv6 traffic is not governed (re-apply to restore it)',
      'info: IPv4: FORWARD jumps to DOCKER-USER only at rule 2, after "-A FORWARD -j ts-forward" (Docker\'s own rules drifted)',
      "info: IPv6: chain DOCKER-USER exists but FORWARD does not jump to it (Docker's own rules drifted)",
      'warning: IPv4: "-A FORWARD -j EGRESS-FWD" is missing: forwarded IPv4 traffic is not governed (re-apply to restore it)',
      'warning: IPv6: the jump to EGRESS-FWD is rule 2 of FORWARD, after "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT": what those rules accept is not governed (re-apply to put it first)',
    ]);
  });

  test('drift, side doors and the host are plain JSON', () => {
    const h = fixtureHost();
    for (const v of [h, sideDoors(h, []), suggestSources(h), ebpfDatapath(h), forwardJumpDrift(...saves('not-first'))]) expect(JSON.parse(JSON.stringify(v))).toEqual(v);
  });
});
