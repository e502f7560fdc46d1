/**
 * The lab's network: one "world" namespace that answers on every address of
 * the documentation prefixes, and "host" namespaces (where a policy is
 * applied and probes start) each linked to the world by a veth pair.
 *
 *   host (egress-<tag>-h<k>)                    world (egress-<tag>-world)
 *   eg<tag>h<k> 198.18.k.1/30, 2001:2:0:k::1/64  ── eg<tag>w<k> 198.18.k.2, 2001:2:0:k::2
 *   routes: 192.0.2.0/24, 198.51.100.0/24,        local routes on lo: the same prefixes
 *           203.0.113.0/24, 2001:db8::/32 → world  (every address is the world's own)
 *
 * The link itself uses the benchmarking ranges (198.18.0.0/15, RFC 2544;
 * 2001:2::/48, RFC 5180) so that no documentation address is taken by the
 * link and every one of them can be probed. Neither namespace has a default
 * route: a packet to anything else fails with ENETUNREACH and never leaves.
 * Neighbour entries are static on both sides, so no ARP or IPv6 neighbour
 * discovery is needed and a policy that turns the `icmpv6_nd` builtin off
 * cannot break the link. IPv6 duplicate address detection is off, so
 * addresses are usable at once.
 *
 * Under `forward:` a host also gets container namespaces behind it
 * (addContainer: a veth pair, forwarding on in the host namespace only, the
 * container's default route via the host), and the world reaches their
 * addresses through that host while they probe (withReturnRoutes).
 */
import type { Family } from '../policy/address.js';
import { parseAddress, parseDest } from '../policy/address.js';
import type { Execer, Started } from '../kernel/exec.js';
import { createNetns, ifName, ipBatch, NetnsError, netnsName, sweepStale, sysctl, uniqueTag, cleanup, writeNetnsEtc } from '../kernel/netns.js';
import { WORLD_LISTENER_SOURCE } from './world-listener.js';
import { WORLD_DNS_SOURCE, type WorldZone } from './world-dns.js';

/** The documentation prefixes (RFC 5737, RFC 3849): the only destinations the lab ever probes. */
export const DOC_PREFIXES: Record<Family, readonly string[]> = {
  ipv4: ['192.0.2.0/24', '198.51.100.0/24', '203.0.113.0/24'],
  ipv6: ['2001:db8::/32'],
};

const DOC_INTERVALS = (Object.keys(DOC_PREFIXES) as Family[]).flatMap((family) =>
  DOC_PREFIXES[family].map((p) => {
    const d = parseDest(p);
    if (d.kind !== 'addr') throw new Error(`bad documentation prefix ${p}`);
    return { family, lo: d.lo, hi: d.hi };
  }),
);

/** Whether an address lies in a documentation prefix (and so may be probed). */
export function inDocumentation(family: Family, v: bigint): boolean {
  return DOC_INTERVALS.some((x) => x.family === family && x.lo <= v && v <= x.hi);
}

/** The documentation intervals of a family, for callers that pick addresses. */
export function documentationIntervals(family: Family): { lo: bigint; hi: bigint }[] {
  return DOC_INTERVALS.filter((x) => x.family === family).map(({ lo, hi }) => ({ lo, hi }));
}

const MAX_HOSTS = 256;
/** A container's interface, inside its namespace. */
const CONTAINER_IF = 'eth0';
/** Interface names the lab may create for a container in a host namespace (what Linux allows, less ":" and "@", which ip reads as syntax). */
export const CONTAINER_IFNAME = /^(?!\.{1,2}$)[A-Za-z0-9_.-]{1,15}$/;

export interface Ports {
  tcp: number[];
  udp: number[];
}

/** A host namespace: where a ruleset is loaded and probes start. */
export interface Host {
  ns: string;
  index: number;
  /** Its interface toward the world: where every probe leaves it (explain's --via for forwarded probes). */
  uplink: string;
  close(): Promise<void>;
}

/** A container namespace behind a host namespace (`forward:`), as addContainer builds it. */
export interface ContainerSpec {
  /** Its interface's name in the host namespace (1-15 characters, not "lo"). */
  hostIf: string;
  /** Its address per family (at least one): a /32 or /128 of its own, never one the world answers for while it exists. */
  addresses: Partial<Record<Family, string>>;
}

/** A container namespace: where forwarded probes start. */
export interface Container {
  ns: string;
  close(): Promise<void>;
}

/** Most containers behind one host. */
export const MAX_CONTAINERS = 16;

/** How the world reaches a host: its end of the host's link, and the host's addresses on it. */
interface HostLink {
  worldIf: string;
  ipv4: string;
  ipv6: string;
  /** Containers added behind it so far (each gets the next index: names, MACs, link addresses). */
  containers: number;
}

export class World {
  private readonly hosts = new Map<number, HostLink>();
  /** Return routes to containers exist for one host at a time (see withReturnRoutes). */
  private routes: Promise<void> = Promise.resolve();
  private nextIndex = 0;
  private readonly listening = { tcp: new Set<number>(), udp: new Set<number>() };
  private closed = false;
  private dns: Started | undefined;

  private constructor(
    readonly x: Execer,
    readonly tag: string,
    readonly ns: string,
    private readonly listener: Started,
    private readonly removeNs: () => Promise<void>,
    private readonly cleanupId: number,
  ) {}

  /** Create the world namespace and start its listener. Close it with `close()` (a `finally`). */
  static async create(x: Execer): Promise<World> {
    await sweepStale(x);
    const tag = uniqueTag();
    const ns = netnsName(tag, 'world');
    const removeNs = await createNetns(x, ns);
    let listener: Started | undefined;
    try {
      await sysctl(x, ns, {
        'net.ipv6.conf.all.accept_dad': 0,
        'net.ipv6.conf.default.accept_dad': 0,
        'net.ipv6.conf.all.forwarding': 0,
        'net.ipv4.ip_nonlocal_bind': 1,
        'net.ipv6.ip_nonlocal_bind': 1,
      });
      await ipBatch(x, ns, [...DOC_PREFIXES.ipv4, ...DOC_PREFIXES.ipv6].map((p) => `route add local ${p} dev lo`));
      listener = x.start(process.execPath, ['--input-type=module', '-e', WORLD_LISTENER_SOURCE], { netns: ns });
      const first = await withTimeout(listener.nextLine(), 10_000, 'world listener did not start');
      if (first !== 'ready') throw new NetnsError(`world listener said ${JSON.stringify(first)}`);
    } catch (e) {
      await listener?.stop();
      await removeNs();
      throw e;
    }
    const l = listener;
    const id = cleanup.add(async () => {
      await l.stop();
    });
    return new World(x, tag, ns, l, removeNs, id);
  }

  /** Make the world answer TCP and UDP on these ports (both families, every documentation address). */
  async listen(ports: Partial<Ports>): Promise<void> {
    const tcp = [...new Set(ports.tcp ?? [])].filter((p) => !this.listening.tcp.has(p));
    const udp = [...new Set(ports.udp ?? [])].filter((p) => !this.listening.udp.has(p));
    if (!tcp.length && !udp.length) return;
    for (const p of [...tcp, ...udp]) if (!Number.isInteger(p) || p < 1 || p > 65535) throw new Error(`cannot listen on port ${p}`);
    this.listener.write(JSON.stringify({ tcp, udp }) + '\n');
    const answer = await withTimeout(this.listener.nextLine(), 20_000, 'world listener did not answer');
    if (answer !== 'ok') throw new NetnsError(`world listener: ${answer}`);
    for (const p of tcp) this.listening.tcp.add(p);
    for (const p of udp) this.listening.udp.add(p);
  }

  /**
   * Run the world's DNS server (world-dns.ts) with this zone: the upstream of
   * the forwarder a host runs under `dns.proxy`. Once per world; it stops
   * with the world.
   */
  async serveDns(zone: WorldZone): Promise<void> {
    if (this.closed) throw new Error('world is closed');
    if (this.dns) throw new Error('the world already serves DNS');
    const s = this.x.start(process.execPath, ['--input-type=module', '-e', WORLD_DNS_SOURCE], { netns: this.ns });
    this.dns = s;
    s.write(JSON.stringify(zone) + '\n');
    const first = await withTimeout(s.nextLine(), 20_000, 'world DNS server did not start').catch(async (e: Error) => {
      const r = await s.stop();
      throw new NetnsError(`${e.message}: ${r.stderr.slice(0, 500)}`);
    });
    if (first !== 'ready') throw new NetnsError(`world DNS server said ${JSON.stringify(first)}`);
  }

  /**
   * A fresh host namespace linked to this world (fresh: no ruleset, no
   * conntrack entries). `names` are pinned in the namespace's own hosts file
   * (/etc/netns/NS/hosts, which `ip netns exec` puts over /etc/hosts). Its
   * name service is files only, so nothing in it ever asks a real DNS —
   * unless `nameservers` are given (the world's DNS server, under
   * `dns.proxy`): then its resolv.conf names them and hosts are looked up in
   * the files, then DNS.
   */
  async addHost(names: readonly NamePin[] = [], nameservers: readonly string[] = []): Promise<Host> {
    if (this.closed) throw new Error('world is closed');
    if (this.hosts.size >= MAX_HOSTS) throw new Error(`at most ${MAX_HOSTS} hosts per world`);
    // Round robin rather than lowest free: an index just given back is the last to be reused.
    let k = this.nextIndex;
    while (this.hosts.has(k)) k = (k + 1) % MAX_HOSTS;
    this.nextIndex = (k + 1) % MAX_HOSTS;
    const kk = k.toString(36);
    const ns = netnsName(this.tag, `h${kk}`);
    const hostIf = ifName(this.tag, `h${kk}`);
    const worldIf = ifName(this.tag, `w${kk}`);
    const hex = k.toString(16).padStart(2, '0');
    const mac = (end: string) => `02:65:67:${hex}:00:${end}`;
    const v4 = (end: number) => `198.18.${k}.${end}`;
    const v6 = (end: number) => `2001:2:0:${k.toString(16)}::${end}`;
    this.hosts.set(k, { worldIf, ipv4: v4(1), ipv6: v6(1), containers: 0 });
    let removeNs: (() => Promise<void>) | undefined;
    try {
      removeNs = await createNetns(this.x, ns);
      writeNetnsEtc(ns, hostsFiles(names, nameservers));
      await sysctl(this.x, ns, {
        'net.ipv6.conf.all.accept_dad': 0,
        'net.ipv6.conf.default.accept_dad': 0,
        'net.ipv6.conf.default.router_solicitations': 0,
        'net.ipv6.conf.default.accept_ra': 0,
      });
      // Created inside the host namespace with its peer straight in the world: never in the root namespace.
      await ipBatch(this.x, ns, [
        `link add ${hostIf} address ${mac('01')} type veth peer name ${worldIf} address ${mac('02')} netns ${this.ns}`,
        `addr add ${v4(1)}/30 dev ${hostIf}`,
        `addr add ${v6(1)}/64 dev ${hostIf} nodad`,
        `link set ${hostIf} up`,
        `neigh replace ${v4(2)} lladdr ${mac('02')} dev ${hostIf} nud permanent`,
        `neigh replace ${v6(2)} lladdr ${mac('02')} dev ${hostIf} nud permanent`,
        ...DOC_PREFIXES.ipv4.map((p) => `route add ${p} via ${v4(2)} dev ${hostIf}`),
        ...DOC_PREFIXES.ipv6.map((p) => `route add ${p} via ${v6(2)} dev ${hostIf}`),
      ]);
      await ipBatch(this.x, this.ns, [
        `addr add ${v4(2)}/30 dev ${worldIf}`,
        `addr add ${v6(2)}/64 dev ${worldIf} nodad`,
        `link set ${worldIf} up`,
        `neigh replace ${v4(1)} lladdr ${mac('01')} dev ${worldIf} nud permanent`,
        `neigh replace ${v6(1)} lladdr ${mac('01')} dev ${worldIf} nud permanent`,
      ]);
    } catch (e) {
      this.hosts.delete(k);
      await removeNs?.();
      throw e;
    }
    return { ns, index: k, uplink: hostIf, close: closeOnce(this.x, ns, hostIf, removeNs, () => this.hosts.delete(k)) };
  }

  /**
   * A container namespace behind `host` (`forward:`): a veth pair whose
   * host end is `spec.hostIf`, the container's addresses as /32 and /128 on
   * its `eth0`, its default routes via the host (198.19.C.1 and fe80::1,
   * static neighbours), and forwarding on in the host namespace (only
   * there). The host routes each address to that interface. The world does
   * not reach the container until withReturnRoutes. `names` are pinned in
   * the container's own hosts file, as in a host's.
   */
  async addContainer(host: Host, spec: ContainerSpec, names: readonly NamePin[] = []): Promise<Container> {
    const link = this.hosts.get(host.index);
    if (this.closed || !link) throw new Error('no such host in this world');
    if (link.containers >= MAX_CONTAINERS) throw new Error(`at most ${MAX_CONTAINERS} containers per host`);
    if (!CONTAINER_IFNAME.test(spec.hostIf) || spec.hostIf === 'lo' || spec.hostIf === host.uplink) throw new Error(`cannot name a container's interface "${spec.hostIf}"`);
    const addresses = Object.entries(spec.addresses).map(([fam, a]) => {
      const p = parseAddress(a);
      if (!p || p.family !== fam) throw new Error(`bad ${fam} address for a container: ${JSON.stringify(a)}`);
      return { family: p.family, text: a };
    });
    if (!addresses.length) throw new Error('a container needs an address');
    const c = link.containers++;
    const ns = netnsName(this.tag, `h${host.index.toString(36)}c${c.toString(36)}`);
    const mac = (end: string) => `02:65:67:${host.index.toString(16).padStart(2, '0')}:${(c + 1).toString(16).padStart(2, '0')}:${end}`;
    const gw = { ipv4: `198.19.${c}.1`, ipv6: 'fe80::1' };
    const plen = { ipv4: 32, ipv6: 128 };
    let removeNs: (() => Promise<void>) | undefined;
    try {
      removeNs = await createNetns(this.x, ns);
      writeNetnsEtc(ns, hostsFiles(names));
      await sysctl(this.x, ns, {
        'net.ipv6.conf.all.accept_dad': 0,
        'net.ipv6.conf.default.accept_dad': 0,
        'net.ipv6.conf.default.router_solicitations': 0,
        'net.ipv6.conf.default.accept_ra': 0,
      });
      await sysctl(this.x, host.ns, { 'net.ipv4.ip_forward': 1, 'net.ipv6.conf.all.forwarding': 1 });
      // Created inside the host namespace with its peer straight in the container: never in the root namespace.
      await ipBatch(this.x, host.ns, [
        `link add ${spec.hostIf} address ${mac('01')} type veth peer name ${CONTAINER_IF} address ${mac('02')} netns ${ns}`,
        `addr add ${gw.ipv4}/32 dev ${spec.hostIf}`,
        `addr add ${gw.ipv6}/64 dev ${spec.hostIf} nodad`,
        `link set ${spec.hostIf} up`,
        ...addresses.flatMap((a) => [`route add ${a.text}/${plen[a.family]} dev ${spec.hostIf}`, `neigh replace ${a.text} lladdr ${mac('02')} dev ${spec.hostIf} nud permanent`]),
      ]);
      await ipBatch(this.x, ns, [
        ...addresses.map((a) => `addr add ${a.text}/${plen[a.family]} dev ${CONTAINER_IF}${a.family === 'ipv6' ? ' nodad' : ''}`),
        `link set ${CONTAINER_IF} up`,
        `neigh replace ${gw.ipv4} lladdr ${mac('01')} dev ${CONTAINER_IF} nud permanent`,
        `neigh replace ${gw.ipv6} lladdr ${mac('01')} dev ${CONTAINER_IF} nud permanent`,
        ...addresses.map((a) => `route add default via ${gw[a.family]} dev ${CONTAINER_IF}${a.family === 'ipv4' ? ' onlink' : ''}`),
      ]);
    } catch (e) {
      await removeNs?.();
      throw e;
    }
    return { ns, close: closeOnce(this.x, host.ns, spec.hostIf, removeNs) };
  }

  /**
   * Run `fn` while the world routes replies to `addresses` (containers behind
   * `host`) back through the host: a /32 or /128 route in the world's local
   * table, where it wins over the local route of its documentation prefix
   * (the world answers for every documentation address, and a container's
   * address may be one). Containers of different hosts may share addresses,
   * so one host at a time holds these routes: a second call waits for the
   * first to finish. The routes are removed afterwards.
   */
  async withReturnRoutes<T>(host: Host, addresses: readonly string[], fn: () => Promise<T>): Promise<T> {
    const before = this.routes;
    let release!: () => void;
    this.routes = new Promise((resolve) => (release = resolve));
    try {
      await before;
      const link = this.hosts.get(host.index);
      if (this.closed || !link) throw new Error('no such host in this world');
      const routes = addresses.map((a) => {
        const p = parseAddress(a);
        if (!p) throw new Error(`bad container address ${JSON.stringify(a)}`);
        return p.family === 'ipv4' ? `${a}/32 via ${link.ipv4}` : `${a}/128 via ${link.ipv6}`;
      });
      await ipBatch(this.x, this.ns, routes.map((r) => `route replace ${r} dev ${link.worldIf} table local`));
      try {
        return await fn();
      } finally {
        // -force: a route whose host is already gone went with its interface.
        await this.x.run('ip', ['-n', this.ns, '-force', '-batch', '-'], { input: routes.map((r) => `route del ${r} dev ${link.worldIf} table local`).join('\n') + '\n' });
      }
    } finally {
      release();
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    cleanup.remove(this.cleanupId);
    await this.dns?.stop();
    await this.listener.stop();
    await this.removeNs();
  }
}

/**
 * close() for a namespace linked by a veth pair whose end `link` is in
 * `linkNs`: runs once. The kernel dismantles a deleted namespace later, in a
 * work queue: the pair is deleted first (both ends at once), so the other
 * side holds nothing of the namespace once close() returns.
 */
function closeOnce(x: Execer, linkNs: string, link: string, removeNs: () => Promise<void>, after: () => void = () => {}): () => Promise<void> {
  let open = true;
  return async () => {
    if (!open) return;
    open = false;
    await x.run('ip', ['-n', linkNs, 'link', 'del', link]);
    await removeNs();
    after();
  };
}

/** A hostname and the addresses it is pinned to in a host namespace. */
export interface NamePin {
  name: string;
  ipv4: string[];
  ipv6: string[];
}

/** The /etc files of a host namespace: its pins, and a name service that reads only them (and the world's DNS, when `nameservers` are given). */
export function hostsFiles(names: readonly NamePin[], nameservers: readonly string[] = []): Record<string, string> {
  const lines = ['# egress lab: names pinned for the rehearsal', '127.0.0.1 localhost', '::1 localhost ip6-localhost'];
  for (const n of names) {
    if (!/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9.])?$/.test(n.name)) throw new Error(`cannot pin ${JSON.stringify(n.name)}: not a hostname`);
    for (const a of [...n.ipv4, ...n.ipv6]) lines.push(`${a} ${n.name}`);
  }
  for (const s of nameservers) if (!parseAddress(s) || !inDocumentation(parseAddress(s)!.family, parseAddress(s)!.value)) throw new Error(`cannot name ${JSON.stringify(s)} as a nameserver: not a documentation address`);
  return {
    hosts: lines.join('\n') + '\n',
    'nsswitch.conf': `passwd: files\ngroup: files\nshadow: files\nhosts: files${nameservers.length ? ' dns' : ''}\n`,
    'resolv.conf': nameservers.length
      ? `# egress lab: the world's DNS server (the forwarder's upstream; a program's queries to it are redirected to the forwarder)\n${nameservers.map((s) => `nameserver ${s}`).join('\n')}\noptions timeout:10 attempts:3\n`
      : '# egress lab: no DNS inside the rehearsal\n',
  };
}

/** `p`, or a NetnsError saying `what` when it takes longer than `ms`. */
export async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, rej) => (t = setTimeout(() => rej(new NetnsError(`${what} within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(t);
  }
}
