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

export interface Ports {
  tcp: number[];
  udp: number[];
}

/** A host namespace: where a ruleset is loaded and probes start. */
export interface Host {
  ns: string;
  index: number;
  close(): Promise<void>;
}

export class World {
  private readonly hosts = new Set<number>();
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
    this.hosts.add(k);
    const kk = k.toString(36);
    const ns = netnsName(this.tag, `h${kk}`);
    const hostIf = ifName(this.tag, `h${kk}`);
    const worldIf = ifName(this.tag, `w${kk}`);
    const hex = k.toString(16).padStart(2, '0');
    const mac = (end: string) => `02:65:67:${hex}:00:${end}`;
    const v4 = (end: number) => `198.18.${k}.${end}`;
    const v6 = (end: number) => `2001:2:0:${k.toString(16)}::${end}`;
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
    const remove = removeNs;
    let open = true;
    return {
      ns,
      index: k,
      close: async () => {
        if (!open) return;
        open = false;
        // The kernel dismantles a deleted namespace later, in a work queue: delete the veth pair
        // (both ends, at once) first, so the world holds nothing of this host once close() returns.
        await this.x.run('ip', ['-n', ns, 'link', 'del', hostIf]);
        await remove();
        this.hosts.delete(k);
      },
    };
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
