/**
 * Random policies and flows for the kernel differential test, from a small
 * alphabet (a few documentation addresses, CIDRs and ranges in both
 * families, ports next to each other, three users and a group, ICMP echo) so
 * a shrunk counterexample stays readable. Users are numeric uids that do not
 * exist on the machine: the kernel's owner match works on numbers.
 */
import fc from 'fast-check';
import { staticResolver, type Accounts, type Resolver } from '../../src/resolve/resolver.js';
import type { Probe } from '../../src/lab/probe.js';
import { policyYaml } from '../property/gen.js';

export const KERNEL_ACCOUNTS: Accounts = {
  users: new Map([
    ['root', 0],
    ['egress-a', 4_100_001],
    ['egress-b', 4_100_002],
  ]),
  groups: new Map([
    ['root', 0],
    ['egress-a', 4_100_001],
    ['egress-b', 4_100_002],
    ['egress-g', 4_100_010],
  ]),
  primaryGroup: new Map([
    [0, 0],
    [4_100_001, 4_100_001],
    [4_100_002, 4_100_002],
  ]),
};

export function kernelResolver(hosts: Record<string, { ipv4?: string[]; ipv6?: string[] }> = {}): Resolver {
  return staticResolver(hosts, {}, KERNEL_ACCOUNTS);
}

const DESTS4 = ['192.0.2.1', '192.0.2.2', '198.51.100.7', '203.0.113.200', '192.0.2.0/30', '192.0.2.2-192.0.2.3', '198.51.100.0/25', '192.0.2.0/24'];
const DESTS6 = ['2001:db8::1', '2001:db8::2', '2001:db8:1::7', '2001:db8::/126', '2001:db8::2-2001:db8::3', '2001:db8:1::/48', '2001:db8::/32'];
const PORT_SELS = ['tcp/25', 'tcp/80', 'tcp/80-81', 'tcp/443', 'udp/53', 'udp/53-54', 'udp/123', 'tcp', 'udp', 'sctp/80'];
const USERS = ['root', 'egress-a', 'egress-b'];

export interface KSelectors {
  to?: string[];
  ports?: string[];
  icmp?: string[];
  user?: string[];
  group?: string[];
  family?: 'ipv4' | 'ipv6';
}
export interface KRule extends KSelectors {
  name: string;
  except?: KSelectors[];
}
export interface KPolicy {
  mode: 'enforce' | 'audit';
  default: 'accept' | 'reject' | 'drop';
  allow: KRule[];
  deny: KRule[];
}

const some = <T>(xs: T[], max = 3) => fc.uniqueArray(fc.constantFrom(...xs), { minLength: 1, maxLength: max });

const l4Arb: fc.Arbitrary<Pick<KSelectors, 'ports' | 'icmp'>> = fc.oneof(
  { weight: 1, arbitrary: fc.constant({}) },
  { weight: 5, arbitrary: some(PORT_SELS).map((ports) => ({ ports })) },
  { weight: 1, arbitrary: fc.constant<Pick<KSelectors, 'icmp'>>({ icmp: ['echo-request'] }) },
);

const selectorsArb: fc.Arbitrary<KSelectors> = fc
  .tuple(
    fc.record(
      {
        to: some([...DESTS4, ...DESTS6]),
        user: some(USERS, 2),
        group: fc.constant<string[]>(['egress-g']),
        family: fc.constantFrom('ipv4' as const, 'ipv6' as const),
      },
      { requiredKeys: [] },
    ),
    l4Arb,
  )
  .map(([s, l4]) => fixFamily({ ...s, ...l4 }));

/** A family selector with destinations of the other family only is an error; drop such destinations. */
function fixFamily(s: KSelectors): KSelectors {
  if (!s.family || !s.to) return s;
  const to = s.to.filter((d) => d.includes(':') === (s.family === 'ipv6'));
  const { to: _t, ...rest } = s;
  return to.length ? { ...rest, to } : rest;
}

export const kPolicyArb: fc.Arbitrary<KPolicy> = fc.record({
  mode: fc.constantFrom('enforce' as const, 'enforce' as const, 'audit' as const),
  default: fc.constantFrom('accept' as const, 'reject' as const, 'drop' as const),
  allow: fc.array(selectorsArb, { maxLength: 4 }).map((xs) => xs.map((s, i) => ({ name: `a${i}`, ...s }))),
  deny: fc
    .array(fc.tuple(selectorsArb, fc.option(fc.array(selectorsArb, { minLength: 1, maxLength: 2 }), { nil: undefined })), { maxLength: 3 })
    .map((xs) => xs.map(([s, except], i) => ({ name: `d${i}`, ...s, ...(except ? { except } : {}) }))),
});

export function kPolicyYaml(p: KPolicy): string {
  return policyYaml(p);
}

const FLOW_DESTS = [
  '192.0.2.1',
  '192.0.2.2',
  '192.0.2.3',
  '192.0.2.4',
  '192.0.2.255',
  '198.51.100.7',
  '198.51.100.200',
  '203.0.113.200',
  '203.0.113.1',
  '2001:db8::1',
  '2001:db8::2',
  '2001:db8::3',
  '2001:db8::4',
  '2001:db8:1::7',
  '2001:db8:1:ffff::1',
  '2001:db8:2::1',
];
const FLOW_PORTS = [25, 53, 54, 80, 81, 123, 443, 444];
const OWNERS: { uid: number; gid: number }[] = [
  { uid: 0, gid: 0 },
  { uid: 4_100_001, gid: 4_100_001 },
  { uid: 4_100_002, gid: 4_100_002 },
  { uid: 4_100_001, gid: 4_100_010 },
  { uid: 0, gid: 4_100_010 },
];

export const kProbeArb: fc.Arbitrary<Probe> = fc
  .record({
    proto: fc.constantFrom('tcp' as const, 'tcp' as const, 'udp' as const, 'udp' as const, 'icmp' as const),
    dst: fc.constantFrom(...FLOW_DESTS),
    port: fc.constantFrom(...FLOW_PORTS),
    owner: fc.constantFrom(...OWNERS),
  })
  .map(({ proto, dst, port, owner }) => (proto === 'icmp' ? { proto, dst, ...owner } : { proto, dst, port, ...owner }));

/** Every port a flow may use, so the world listens on all of them once. */
export const KERNEL_PORTS = FLOW_PORTS;
