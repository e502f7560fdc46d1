/**
 * What the host routes for containers and VMs (SPEC §6, the `forward:`
 * scope), read from the kernel: whether it forwards at all, which
 * interfaces could bring workload traffic in, which carry a default route
 * (uplinks), and whether an eBPF datapath takes forwarded packets past
 * netfilter. From that, pure functions derive the side doors (interfaces
 * the host forwards from that no forward source covers), `init --detect`
 * source suggestions, and the iptables backend's jump drift.
 *
 * It takes plain data, not policy types: a source here is a name and its
 * interface globs (a trailing `*` matches any suffix, as nft's `iifname`
 * does). Only `inspectForwarding` runs programs, read-only, through the
 * Execer; everything else is a pure function of what it returned or of
 * `iptables-save` text.
 */
import { ifaceMatches } from '../sim/flow.js';
import { assertNever } from '../diag/diagnostic.js';
import { BITS, formatAddress, parseDest, type Family } from '../policy/address.js';
import { describeFailure, type Execer } from './exec.js';
import { KernelError, mustRun, runIn, type Where } from './where.js';

export interface HostAddress {
  family: Family;
  address: string;
  prefixLen: number;
  /** ip's scope: "global", "link", "host", … */
  scope: string;
}

export interface HostInterface {
  name: string;
  /**
   * ip's link kind ("bridge", "veth", "vxlan", "wireguard", …), "tun" or
   * "tap" for tun devices, and for links without a kind "loopback",
   * "ethernet", or ip's link_type.
   */
  kind: string;
  /** Administratively up (the UP flag). */
  up: boolean;
  /** ip's operstate: "UP", "DOWN", "UNKNOWN", "LOWERLAYERDOWN", … */
  operstate: string;
  /** The bridge (or bond, VRF) it is enslaved to. */
  master?: string;
  addresses: HostAddress[];
}

export interface HostForwarding {
  /** `net.ipv4.ip_forward` and `net.ipv6.conf.all.forwarding` (false when the kernel has no IPv6). */
  forwarding: Record<Family, boolean>;
  interfaces: HostInterface[];
  /** Interfaces a default route leaves through, in any routing table, per family. */
  uplinks: Record<Family, string[]>;
}

/** A forward source as far as interfaces go: its name and its interface globs. */
export interface InterfaceSource {
  name: string;
  interfaces: string[];
}

/** An interface the host forwards from that no forward source covers. */
export interface SideDoor {
  name: string;
  kind: string;
  up: boolean;
  operstate: string;
  /** Its addresses as `address/prefix`, link-local ones left out. */
  addresses: string[];
  /** Interfaces enslaved to it (a bridge's ports). */
  ports: string[];
  /** The families the host forwards (what arrives here of those is routed). */
  families: Family[];
}

export interface EbpfDatapath {
  kind: 'cilium' | 'calico-bpf';
  interfaces: string[];
}

export interface SourceSuggestion {
  name: string;
  interfaces: string[];
  networks: string[];
}

/** The verdict `forward.unlisted` gives flows from no source; undefined = the policy has no forward scope. */
export type Unlisted = 'warn' | 'deny' | 'accept';

const FAMILY_NAME: Record<Family, string> = { ipv4: 'IPv4', ipv6: 'IPv6' };

/**
 * Read, in namespace `netns` (default: where egress runs), what the forward
 * scope needs to know about the host. Read-only: sysctl -n and ip -j.
 */
export async function inspectForwarding(x: Execer, netns?: string): Promise<HostForwarding> {
  const w: Where = { execer: x, ...(netns !== undefined ? { netns } : {}) };
  const route6 = ['ip', '-j', '-6', 'route', 'show', 'default', 'table', 'all'];
  const [v4, v6, links, r4, r6] = await Promise.all([
    mustRun(w, ['sysctl', '-n', 'net.ipv4.ip_forward']),
    readIpv6Forwarding(w),
    // -d adds linkinfo (the kind: bridge, veth, tun, …) to what `ip -j link` and `ip -j addr` print, in one call.
    mustRun(w, ['ip', '-j', '-d', 'addr', 'show']),
    mustRun(w, ['ip', '-j', '-4', 'route', 'show', 'default', 'table', 'all']),
    runIn(w, route6),
  ]);
  // Without an IPv6 stack there is no IPv6 route to list, and ip may say so with an error.
  if (r6.code !== 0 && v6 !== 'absent') throw new KernelError(describeFailure(route6, r6), r6.stderr);
  return {
    forwarding: { ipv4: v4.trim() === '1', ipv6: v6 === true },
    interfaces: readIpLinks(links),
    uplinks: { ipv4: readDefaultRouteDevs(r4), ipv6: r6.code === 0 ? readDefaultRouteDevs(r6.stdout) : [] },
  };
}

/** `net.ipv6.conf.all.forwarding`, or "absent" on a kernel without IPv6 (booted with ipv6.disable=1: no /proc/sys/net/ipv6). */
async function readIpv6Forwarding(w: Where): Promise<boolean | 'absent'> {
  const argv = ['sysctl', '-n', 'net.ipv6.conf.all.forwarding'];
  const r = await runIn(w, argv);
  if (r.code === 0) return r.stdout.trim() === '1';
  if (/cannot stat|No such file/i.test(r.stderr)) return 'absent';
  throw new KernelError(describeFailure(argv, r), r.stderr);
}

interface IpLinkJson {
  ifname?: string;
  flags?: string[];
  operstate?: string;
  link_type?: string;
  master?: string;
  linkinfo?: { info_kind?: string; info_data?: { type?: string } };
  addr_info?: { family?: string; local?: string; prefixlen?: number; scope?: string }[];
}

/** `ip -j -d addr show` → interfaces. Exported for tests with captured output. */
export function readIpLinks(json: string): HostInterface[] {
  const links = parseJsonArray<IpLinkJson>(json, 'ip -j -d addr show');
  return links
    .filter((l) => typeof l.ifname === 'string')
    .map((l) => ({
      name: l.ifname!,
      kind: linkKind(l),
      up: (l.flags ?? []).includes('UP'),
      operstate: l.operstate ?? 'UNKNOWN',
      ...(l.master !== undefined ? { master: l.master } : {}),
      addresses: (l.addr_info ?? []).flatMap((a): HostAddress[] => {
        const family = a.family === 'inet' ? 'ipv4' : a.family === 'inet6' ? 'ipv6' : undefined;
        if (!family || typeof a.local !== 'string' || typeof a.prefixlen !== 'number') return [];
        return [{ family, address: a.local, prefixLen: a.prefixlen, scope: a.scope ?? 'global' }];
      }),
    }));
}

function linkKind(l: IpLinkJson): string {
  const k = l.linkinfo?.info_kind;
  if (k === 'tun') return l.linkinfo?.info_data?.type === 'tap' ? 'tap' : 'tun';
  if (k) return k;
  if (l.link_type === 'ether') return 'ethernet';
  return l.link_type ?? 'unknown';
}

interface IpRouteJson {
  dst?: string;
  type?: string;
  dev?: string;
  nexthops?: { dev?: string }[];
}

/** `ip -j route show default table all` → the devices default routes leave through (unicast only; sorted, unique). */
export function readDefaultRouteDevs(json: string): string[] {
  const devs = new Set<string>();
  for (const r of parseJsonArray<IpRouteJson>(json, 'ip -j route show default')) {
    if (r.type !== undefined && r.type !== 'unicast') continue; // unreachable, blackhole, prohibit: nothing leaves
    if (r.dev) devs.add(r.dev);
    for (const nh of r.nexthops ?? []) if (nh.dev) devs.add(nh.dev);
  }
  return [...devs].sort();
}

function parseJsonArray<T>(text: string, what: string): T[] {
  // ip prints nothing at all (not "[]") for an empty route listing on some versions.
  if (!text.trim()) return [];
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new KernelError(`${what}: unreadable JSON: ${(e as Error).message}`, text.slice(0, 200));
  }
  if (!Array.isArray(v)) throw new KernelError(`${what}: expected a JSON array`, text.slice(0, 200));
  return v as T[];
}

/** Whether interface `name` matches glob `glob` (a trailing `*` matches any suffix, as nft `iifname "br-*"`): the evaluators' own matcher. */
export { ifaceMatches as interfaceMatches };

/** Families the host forwards. */
export function forwardedFamilies(h: HostForwarding): Family[] {
  return (['ipv4', 'ipv6'] as const).filter((f) => h.forwarding[f]);
}

/** Forward rules would see nothing: the host forwards neither family. */
export function forwardingOff(h: HostForwarding): boolean {
  return forwardedFamilies(h).length === 0;
}

/**
 * The eBPF datapaths present, whose forwarded packets may never reach
 * netfilter (Cilium eBPF host routing, cilium/cilium#36921; Calico's BPF
 * mode), so forward rules may see nothing of them. Empty = none.
 */
export function ebpfDatapath(h: HostForwarding): EbpfDatapath[] {
  const out: EbpfDatapath[] = [];
  const cilium = h.interfaces.filter((i) => isCilium(i.name)).map((i) => i.name);
  if (cilium.length) out.push({ kind: 'cilium', interfaces: cilium });
  const calico = h.interfaces.filter((i) => isCalicoBpf(i.name)).map((i) => i.name);
  if (calico.length) out.push({ kind: 'calico-bpf', interfaces: calico });
  return out;
}

const isCilium = (name: string) => name.startsWith('cilium_');
const isCalicoBpf = (name: string) => name === 'bpfin.cali' || name === 'bpfout.cali';

/** Kinds that cannot bring a packet in from anywhere: nothing arrives on them to forward. */
const NO_INGRESS = new Set(['loopback', 'dummy', 'nlmon']);

/**
 * The interfaces the host forwards from that no source covers: every
 * interface but loopback (and dummy, nlmon), ports enslaved to a bridge (its
 * bridge stands for them), uplinks (a default route leaves through them:
 * what arrives there is inbound, not egress) and the eBPF datapath's own
 * devices (`ebpfDatapath` says that separately). Up or not: a down bridge
 * comes up with its first container. Empty when the host forwards neither
 * family.
 *
 * A source covers an interface when one of its `interfaces` globs matches
 * it. A source with networks but no interfaces covers no interface as a
 * whole (traffic from its networks only), so it does not close a side door.
 */
export function sideDoors(h: HostForwarding, sources: readonly InterfaceSource[]): SideDoor[] {
  const families = forwardedFamilies(h);
  if (!families.length) return [];
  const uplinks = new Set([...h.uplinks.ipv4, ...h.uplinks.ipv6]);
  const globs = sources.flatMap((s) => s.interfaces);
  return h.interfaces
    .filter((i) => !NO_INGRESS.has(i.kind) && i.master === undefined && !uplinks.has(i.name))
    .filter((i) => !isCilium(i.name) && !isCalicoBpf(i.name))
    .filter((i) => !globs.some((g) => ifaceMatches(g, i.name)))
    .map((i) => ({
      name: i.name,
      kind: i.kind,
      up: i.up,
      operstate: i.operstate,
      addresses: i.addresses.filter((a) => a.scope !== 'link').map((a) => `${a.address}/${a.prefixLen}`),
      ports: h.interfaces.filter((p) => p.master === i.name).map((p) => p.name),
      families,
    }));
}

/** One `warning:` line per side door, for plan, apply and status. */
export function sideDoorLines(doors: readonly SideDoor[], unlisted?: Unlisted): string[] {
  return doors.map((d) => {
    const fams = d.families.map((f) => FAMILY_NAME[f]).join(' and ');
    const what = [d.kind, ...(d.up ? [] : ['down']), ...d.addresses].join(', ');
    const fate = unlisted === undefined ? 'the policy has no forward scope: its traffic is not governed' : `no forward source covers it: its traffic is "unlisted" (${unlisted})`;
    return `warning: the host forwards ${fams} from ${d.name} (${what}) and ${fate}`;
  });
}

/** The warning for check/plan when forward rules would see nothing, or undefined. */
export function forwardingOffLine(h: HostForwarding): string | undefined {
  if (!forwardingOff(h)) return undefined;
  return 'warning: the host forwards neither IPv4 nor IPv6 (net.ipv4.ip_forward=0, net.ipv6.conf.all.forwarding=0): forward rules will see no traffic';
}

/** The warning for check/plan when an eBPF datapath may take forwarded traffic past netfilter, or undefined. */
export function ebpfDatapathLine(h: HostForwarding): string | undefined {
  const found = ebpfDatapath(h);
  if (!found.length) return undefined;
  const what = found.map((e) => `${e.kind === 'cilium' ? 'Cilium' : 'Calico BPF'} (${e.interfaces.join(', ')})`).join(' and ');
  return `warning: an eBPF datapath is present: ${what}: forwarded traffic it routes may bypass netfilter, and forward rules would not see it`;
}

// ---- init --detect ----

interface WorkloadPattern {
  /** Names the tool gives its interfaces. */
  re: RegExp;
  kind: string;
  /** What the suggestion says: a glob, or the name itself. */
  glob: string;
  /** Suggest the glob once the tool is seen at all, for interfaces it has not made yet (Docker's per-network br-…). */
  ahead?: boolean;
}

/**
 * Who makes which interfaces. Conservative: only names a tool is known to
 * give, of the kind it makes. Left out: flannel.1, tunl0, vxlan.calico
 * (they bring other nodes' pod traffic, not this host's workloads) and
 * Cilium's lxc… (eBPF: see ebpfDatapath).
 */
const WORKLOADS: { source: string; patterns: WorkloadPattern[] }[] = [
  {
    source: 'docker',
    patterns: [
      { re: /^docker0$/, kind: 'bridge', glob: 'docker0' },
      // A user-defined network's bridge is br- and the first 12 hex digits of the network id.
      { re: /^br-[0-9a-f]{12}$/, kind: 'bridge', glob: 'br-*', ahead: true },
    ],
  },
  {
    source: 'podman',
    patterns: [
      { re: /^podman\d+$/, kind: 'bridge', glob: 'podman*' }, // netavark
      { re: /^cni-podman\d+$/, kind: 'bridge', glob: 'cni-podman*' }, // CNI (podman 3/4)
    ],
  },
  { source: 'libvirt', patterns: [{ re: /^virbr\d+$/, kind: 'bridge', glob: 'virbr*' }] },
  { source: 'lxd', patterns: [{ re: /^lxdbr\d+$/, kind: 'bridge', glob: 'lxdbr*' }] },
  { source: 'incus', patterns: [{ re: /^incusbr\d+$/, kind: 'bridge', glob: 'incusbr*' }] },
  {
    source: 'pods',
    patterns: [
      { re: /^cni0$/, kind: 'bridge', glob: 'cni0' }, // the bridge and flannel CNI plugins
      { re: /^cali[0-9a-f]{11}$/, kind: 'veth', glob: 'cali*' }, // Calico's per-pod veths (iptables/nft mode)
    ],
  },
];

/**
 * Forward sources for `init --detect`, from the interfaces container and VM
 * tools make: one source per tool found, its interfaces as the tool's glob
 * (e.g. `["docker0", "br-*"]`), its networks from the addresses on them
 * (host bits cleared; link-local left out).
 *
 * A glob is suggested only when every interface it would match now is one
 * the tool made (enslaved ports aside); otherwise the tool's interfaces by
 * name, so that a hand-made `br-lan` never becomes "docker". Docker's `br-*`
 * is suggested as soon as Docker is seen, since each compose project makes
 * another one.
 */
export function suggestSources(h: HostForwarding): SourceSuggestion[] {
  const free = h.interfaces.filter((i) => i.master === undefined);
  const made = (p: WorkloadPattern) => free.filter((i) => p.re.test(i.name) && i.kind === p.kind);
  const out: SourceSuggestion[] = [];
  for (const w of WORKLOADS) {
    const found = w.patterns.map((p) => ({ p, ifs: made(p) }));
    if (!found.some((f) => f.ifs.length)) continue;
    const interfaces: string[] = [];
    const ifs: HostInterface[] = [];
    for (const { p, ifs: mine } of found) {
      ifs.push(...mine);
      if (!mine.length && !p.ahead) continue;
      const strangers = free.filter((i) => ifaceMatches(p.glob, i.name) && !mine.includes(i));
      interfaces.push(...(strangers.length ? mine.map((i) => i.name) : [p.glob]));
    }
    if (!interfaces.length) continue;
    out.push({ name: w.source, interfaces, networks: networksOf(ifs) });
  }
  return out;
}

/** The networks of interfaces' addresses (host bits cleared; no link-local or host scope), IPv4 first, sorted, unique. */
export function networksOf(ifs: readonly HostInterface[]): string[] {
  const nets = new Map<string, { family: Family; lo: bigint; len: number }>();
  for (const a of ifs.flatMap((i) => i.addresses)) {
    if (a.scope === 'link' || a.scope === 'host' || a.prefixLen > BITS[a.family]) continue;
    const d = parseDest(`${a.address}/${a.prefixLen}`);
    if (d.kind !== 'addr') continue;
    nets.set(`${formatAddress(a.family, d.lo)}/${a.prefixLen}`, { family: a.family, lo: d.lo, len: a.prefixLen });
  }
  return [...nets.entries()]
    .sort(([, a], [, b]) => (a.family !== b.family ? (a.family === 'ipv4' ? -1 : 1) : a.lo !== b.lo ? (a.lo < b.lo ? -1 : 1) : a.len - b.len))
    .map(([k]) => k);
}

// ---- iptables: where the jump to EGRESS-FWD lives, and its drift ----

export type JumpChain = 'DOCKER-USER' | 'FORWARD';

/**
 * The iptables backend's contract for forwarded traffic, per family: when
 * chain DOCKER-USER exists, `-A DOCKER-USER -j <chain>` is its first rule
 * (Docker jumps to DOCKER-USER first from FORWARD and re-creates that jump
 * on restart); otherwise `-A FORWARD -j <chain>` is FORWARD's first rule.
 *
 * - `missing-chain`: the chain itself is gone (a flush, a firewall reload);
 * - `missing-jump`: no jump where the contract puts it (and none in FORWARD
 *   either, when DOCKER-USER exists: that is `jump-in-forward`);
 * - `jump-not-first`: rules before it decide first (`before`, save text);
 * - `jump-in-forward`: the jump is in FORWARD but DOCKER-USER exists now
 *   (Docker started after apply; its restart puts its own jump above ours);
 * - `docker-user-not-first` (info): FORWARD does not jump to DOCKER-USER
 *   first (Docker's own layout drifted, moby/libnetwork#2631); our own
 *   jump before it does not count.
 */
export type Drift = { family: Family; severity: 'warning' | 'info' } & (
  | { kind: 'missing-chain'; chain: string }
  | { kind: 'missing-jump'; chain: string; in: JumpChain }
  | { kind: 'jump-not-first'; chain: string; in: JumpChain; position: number; before: string[] }
  | { kind: 'jump-in-forward'; chain: string; alsoInDockerUser: boolean }
  | { kind: 'docker-user-not-first'; position?: number; before: string[] }
);

interface FilterTable {
  /** Chains declared (`:NAME POLICY [p:b]`), builtin ones included. */
  chains: Set<string>;
  /** Each chain's rules in order, as save lines without the `[p:b]` counters. */
  rules: Map<string, string[]>;
}

/** The filter table of one family's `iptables-save` / `iptables-save -c` output (empty when it has none). */
function readFilterTable(save: string): FilterTable {
  const t: FilterTable = { chains: new Set(), rules: new Map() };
  let inFilter = false;
  for (const raw of save.split('\n')) {
    const line = raw.trimEnd();
    if (line.startsWith('*')) inFilter = line === '*filter';
    if (!inFilter) continue;
    const decl = /^:(\S+) /.exec(line);
    if (decl) t.chains.add(decl[1]!);
    const m = /^(?:\[\d+:\d+\] )?(-A (\S+)(?: .*)?)$/.exec(line);
    if (m) t.rules.set(m[2]!, [...(t.rules.get(m[2]!) ?? []), m[1]!]);
  }
  return t;
}

/** `-A CHAIN -j TARGET`, with at most a comment: an unconditional jump. */
function isJump(rule: string, from: string, to: string): boolean {
  const m = /^-A (\S+)(?: -m comment --comment (?:"(?:[^"\\]|\\.)*"|\S+))? -j (\S+)$/.exec(rule);
  return !!m && m[1] === from && m[2] === to;
}

/** Where apply puts the jump to the forward chain in this family: DOCKER-USER when it exists. */
export function forwardJumpPlace(save: string): { chain: JumpChain } {
  return { chain: readFilterTable(save).chains.has('DOCKER-USER') ? 'DOCKER-USER' : 'FORWARD' };
}

/** Drift of the jump to `chain` in both families' `iptables-save -t filter` output (with or without -c). */
export function forwardJumpDrift(saveV4: string, saveV6: string, chain = 'EGRESS-FWD'): Drift[] {
  return [...familyDrift('ipv4', saveV4, chain), ...familyDrift('ipv6', saveV6, chain)];
}

function familyDrift(family: Family, save: string, chain: string): Drift[] {
  const t = readFilterTable(save);
  const out: Drift[] = [];
  const docker = t.chains.has('DOCKER-USER');
  const forward = t.rules.get('FORWARD') ?? [];
  if (!t.chains.has(chain)) out.push({ family, severity: 'warning', kind: 'missing-chain', chain });
  else {
    const place: JumpChain = docker ? 'DOCKER-USER' : 'FORWARD';
    const rules = t.rules.get(place) ?? [];
    const at = rules.findIndex((r) => isJump(r, place, chain));
    const inForward = docker && forward.some((r) => isJump(r, 'FORWARD', chain));
    if (inForward) out.push({ family, severity: 'warning', kind: 'jump-in-forward', chain, alsoInDockerUser: at >= 0 });
    if (at < 0 && !inForward) out.push({ family, severity: 'warning', kind: 'missing-jump', chain, in: place });
    if (at > 0) out.push({ family, severity: 'warning', kind: 'jump-not-first', chain, in: place, position: at + 1, before: rules.slice(0, at) });
  }
  if (docker) {
    const others = forward.filter((r) => !isJump(r, 'FORWARD', chain));
    const at = others.findIndex((r) => isJump(r, 'FORWARD', 'DOCKER-USER'));
    if (at !== 0) {
      const position = forward.findIndex((r) => isJump(r, 'FORWARD', 'DOCKER-USER'));
      out.push({ family, severity: 'info', kind: 'docker-user-not-first', ...(position >= 0 ? { position: position + 1 } : {}), before: at > 0 ? others.slice(0, at) : [] });
    }
  }
  return out;
}

/** One line per drift (`warning:` or `info:`), for status and plan. */
export function driftLines(drifts: readonly Drift[]): string[] {
  return drifts.map((d) => {
    const fam = FAMILY_NAME[d.family];
    const before = (rules: string[]) => rules.map((r) => `"${r}"`).join(', ');
    switch (d.kind) {
      case 'missing-chain':
        return `warning: ${fam}: chain ${d.chain} is missing from the filter table: forwarded ${fam} traffic is not governed (re-apply to restore it)`;
      case 'missing-jump':
        return `warning: ${fam}: "-A ${d.in} -j ${d.chain}" is missing: forwarded ${fam} traffic is not governed (re-apply to restore it)`;
      case 'jump-not-first':
        return `warning: ${fam}: the jump to ${d.chain} is rule ${d.position} of ${d.in}, after ${before(d.before)}: what those rules accept is not governed (re-apply to put it first)`;
      case 'jump-in-forward':
        return `warning: ${fam}: the jump to ${d.chain} is in FORWARD, but chain DOCKER-USER exists now (Docker started after apply; its restart will put its rules first): re-apply to move it into DOCKER-USER`;
      case 'docker-user-not-first':
        return d.position === undefined
          ? `info: ${fam}: chain DOCKER-USER exists but FORWARD does not jump to it (Docker's own rules drifted)`
          : `info: ${fam}: FORWARD jumps to DOCKER-USER only at rule ${d.position}, after ${before(d.before)} (Docker's own rules drifted)`;
      default:
        return assertNever(d);
    }
  });
}
