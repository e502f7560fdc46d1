/**
 * A host namespace shaped like a machine running containers and VMs, for
 * the forward-scope host inspection (src/kernel/forward-host.ts). Interface
 * names are what the tools would make; addresses are documentation ranges
 * only. The unit fixtures in test/fixtures/forward-host/ were captured from
 * it (`ip -j -d addr show`, default routes), with forwarding on in both
 * families.
 *
 * - `up0`: the uplink, a veth to the world namespace, with both default
 *   routes through it; `tun9` (a VPN-like tun) carries a default route in
 *   table 100 only;
 * - `docker0` (198.51.100.1/26, 2001:db8:d0::1/64) with a container's veth
 *   `vethc0` enslaved; `br-3f2a9c1d7e6b` (a Docker user network, no
 *   container yet);
 * - `br-new` (198.51.100.129/25, 2001:db8:b::1/64): a bridge nobody lists;
 * - `virbr0` (libvirt) with the tap `vnet0` enslaved; `podman0`, `lxdbr0`,
 *   `cni0`, a Calico-style veth `cali0123456789a`;
 * - `tap9` (down) and `vxl9`: other interfaces that could carry workloads;
 * - `cilium_host`/`cilium_net`: an eBPF datapath's devices.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Execer } from '../../src/kernel/exec.js';
import { readDefaultRouteDevs, readIpLinks, type HostForwarding } from '../../src/kernel/forward-host.js';
import { createNetns, ipBatch, netnsName, sysctl } from '../../src/kernel/netns.js';
import { ROOT } from '../paths.js';

export interface ForwardHost {
  host: string;
  close(): Promise<void>;
}

export const DOCKER_NET = 'br-3f2a9c1d7e6b';

/** Build the host (and its world and container namespaces); forwarding stays off until `forwardingOn`. */
export async function forwardHost(x: Execer, tag: string): Promise<ForwardHost> {
  const [host, world, ct] = [netnsName(tag, 'fh'), netnsName(tag, 'fw'), netnsName(tag, 'fc')];
  const dels: (() => Promise<void>)[] = [];
  const close = async () => {
    for (const d of dels.reverse()) await d();
  };
  try {
    for (const ns of [host, world, ct]) dels.push(await createNetns(x, ns));
    for (const ns of [host, world, ct]) await sysctl(x, ns, { 'net.ipv6.conf.all.accept_dad': 0, 'net.ipv6.conf.default.accept_dad': 0 });
    await ipBatch(x, host, [
      `link add up0 type veth peer name up1 netns ${world}`,
      'addr add 192.0.2.2/24 dev up0',
      'addr add 2001:db8::2/64 dev up0 nodad',
      'link set up0 up',
      'link add docker0 type bridge',
      'addr add 198.51.100.1/26 dev docker0',
      'addr add 2001:db8:d0::1/64 dev docker0 nodad',
      `link add vethc0 type veth peer name eth0 netns ${ct}`,
      'link set vethc0 master docker0',
      'link set vethc0 up',
      'link set docker0 up',
      `link add ${DOCKER_NET} type bridge`,
      `addr add 198.51.100.65/26 dev ${DOCKER_NET}`,
      `link set ${DOCKER_NET} up`,
      'link add br-new type bridge',
      'addr add 198.51.100.129/25 dev br-new',
      'addr add 2001:db8:b::1/64 dev br-new nodad',
      'link set br-new up',
      'link add virbr0 type bridge',
      'addr add 203.0.113.1/28 dev virbr0',
      'link set virbr0 up',
      'tuntap add dev vnet0 mode tap',
      'link set vnet0 master virbr0',
      'link set vnet0 up',
      'link add podman0 type bridge',
      'addr add 203.0.113.33/28 dev podman0',
      'link set podman0 up',
      'link add lxdbr0 type bridge',
      'addr add 203.0.113.49/28 dev lxdbr0',
      'link set lxdbr0 up',
      'link add cni0 type bridge',
      'addr add 203.0.113.17/28 dev cni0',
      'link set cni0 up',
      `link add cali0123456789a type veth peer name eth1 netns ${ct}`,
      'link set cali0123456789a up',
      'tuntap add dev tap9 mode tap',
      'link add vxl9 type vxlan id 42 dstport 4789 local 192.0.2.2',
      'link set vxl9 up',
      'link add cilium_host type veth peer name cilium_net',
      'link set cilium_host up',
      'link set cilium_net up',
      'tuntap add dev tun9 mode tun',
      'link set tun9 up',
      'route add default via 192.0.2.1 dev up0',
      'route add default via 2001:db8::1 dev up0',
      'route add default dev tun9 table 100',
    ]);
    await ipBatch(x, world, ['addr add 192.0.2.1/24 dev up1', 'addr add 2001:db8::1/64 dev up1 nodad', 'link set up1 up']);
    await ipBatch(x, ct, ['addr add 198.51.100.2/26 dev eth0', 'link set eth0 up', 'link set eth1 up']);
  } catch (e) {
    await close();
    throw e;
  }
  return { host, close };
}

/** Turn forwarding on in the host namespace (its own sysctls, never the root namespace's). */
export async function forwardingOn(x: Execer, host: string, families: { ipv4: boolean; ipv6: boolean }): Promise<void> {
  await sysctl(x, host, { 'net.ipv4.ip_forward': families.ipv4 ? 1 : 0, 'net.ipv6.conf.all.forwarding': families.ipv6 ? 1 : 0 });
}

export const FIXTURES = join(ROOT, 'test', 'fixtures', 'forward-host');

export const fixture = (name: string): string => readFileSync(join(FIXTURES, name), 'utf8');

/** The host as captured from `forwardHost` (ip -j output), with forwarding as given. */
export function fixtureHost(forwarding: HostForwarding['forwarding'] = { ipv4: true, ipv6: true }): HostForwarding {
  return {
    forwarding,
    interfaces: readIpLinks(fixture('ip-addr.json')),
    uplinks: { ipv4: readDefaultRouteDevs(fixture('route4.json')), ipv6: readDefaultRouteDevs(fixture('route6.json')) },
  };
}

/** The iptables cases captured in fixtures/forward-host/iptables (`<case>.v4.save`, `<case>.v6.save`). */
export const IPTABLES_CASES = ['plain-ok', 'docker-ok', 'docker-appeared', 'not-first', 'docker-drift', 'plain-missing'] as const;

export const saves = (c: string): [string, string] => [fixture(`iptables/${c}.v4.save`), fixture(`iptables/${c}.v6.save`)];
