/**
 * Foreign rulesets for the container-host kernel tests (forward-env.ts): what
 * Docker (iptables or nftables backend) and podman's netavark leave in the
 * host's network namespace for two bridge networks with a published port.
 * Loaded into the host namespace before egress, read back for a before/after
 * hash, and deleted and recreated the way the real daemons do on a restart.
 *
 * Modelled on (the newest versions of these sources in the public repositories):
 *  - docker-iptables: moby's generated iptables documentation for Docker 28+
 *    (integration/network/bridge/iptablesdoc/generated/usernet-portmap.md:
 *    FORWARD → DOCKER-USER, DOCKER-FORWARD → DOCKER-CT / DOCKER-INTERNAL /
 *    DOCKER-BRIDGE → DOCKER; nat PREROUTING/OUTPUT → DOCKER with the DNAT,
 *    POSTROUTING MASQUERADE per network, newest network first; raw
 *    PREROUTING "direct access" DROP), and docs.docker.com
 *    engine/network/firewall-iptables: Docker sets the FORWARD policy to
 *    DROP when it enables forwarding itself (for IPv6 always, in the docs of
 *    some versions). DOCKER-USER is created empty (Docker 28 dropped its
 *    `-j RETURN`).
 *  - docker-nft: moby's integration/network/bridge/nftablesdoc/generated/
 *    new-daemon.md and usernet-portmap.md (Docker 29, `--firewall-backend=
 *    nftables`): tables `ip docker-bridges` and `ip6 docker-bridges`, base
 *    chain filter-FORWARD at priority filter with policy accept (drop only
 *    when the daemon enabled forwarding itself, which the nftables backend
 *    never does), verdict maps keyed by bridge name, per-bridge chains: what
 *    goes out is accepted ("OUTGOING"), what comes in is dropped unless
 *    established, from the same bridge ("ICC") or to a published port
 *    ("UNPUBLISHED PORT DROP"). That drop is Docker's "drop for unknown".
 *  - netavark: containers/netavark src/firewall/nft.rs (the nftables driver,
 *    default since Fedora 41): `table inet netavark`, base chains INPUT /
 *    FORWARD at priority filter (0), PREROUTING / OUTPUT at dstnat (-100),
 *    POSTROUTING at srcnat (100), all policy accept; FORWARD = `ct state
 *    invalid drop`, `jump NETAVARK-ISOLATION-1`, then per subnet an
 *    established accept for traffic to it and an accept for traffic from it;
 *    per-subnet nv_<id8>_<subnet> masquerade chains; published ports through
 *    NETAVARK-HOSTPORT-DNAT → nv_…_dnat with the SETMARK (0x2000) hairpin
 *    masquerade. The rule order is the driver's and the bats tests'
 *    (test/250-bridge-nftables.bats, check_simple_bridge_nftables).
 *
 * Restart (`restartForeign`), from the same sources:
 *  - Docker, iptables: on start the bridge driver removes and recreates its
 *    chains (removeIPChains: DOCKER nat/filter, DOCKER-FORWARD, DOCKER-BRIDGE,
 *    DOCKER-CT, …) and re-adds its rules; DOCKER-USER is created only if
 *    missing and "the daemon does not delete or modify any pre-existing rules
 *    from the DOCKER-USER filter chain" (libnetwork setupUserChain); its jump
 *    is moved to the top of FORWARD (EnsureJumpRule: delete, insert at 1). So
 *    a rule someone else put in DOCKER-USER survives a real restart; a jump
 *    someone put at the top of FORWARD ends up below Docker's two.
 *  - Docker, nftables: Docker "expects to have full ownership of its tables"
 *    (docs): the tables are deleted and created again.
 *  - netavark: no daemon; `podman network reload` tears down and sets up
 *    again: modelled as the table deleted and created again.
 */
import type { Execer } from '../../src/kernel/exec.js';
import { describeFailure } from '../../src/kernel/exec.js';
import { sha256 } from '../../src/kernel/state.js';
import { normalizeRuleset } from './harness.js';

export type ForeignShape = 'docker-iptables' | 'docker-nft' | 'netavark' | 'none';

export const FOREIGN_SHAPES: readonly ForeignShape[] = ['docker-iptables', 'docker-nft', 'netavark', 'none'];

/** One bridge network of the host, as a container runtime would have set it up. */
export interface BridgeNet {
  bridge: string;
  v4: { net: string; gateway: string };
  v6: { net: string; gateway: string };
}

/** The published port: host port `hostPort` (tcp, both families) to `v4`/`v6`:`ctPort` on `net`'s bridge. */
export interface Published {
  net: BridgeNet;
  hostPort: number;
  ctPort: number;
  v4: string;
  v6: string;
}

export interface ShapeInput {
  /** In creation order (Docker puts the newest network's MASQUERADE first). */
  nets: readonly BridgeNet[];
  published: Published;
}

type Fam = 'ipv4' | 'ipv6';
const FAMS: readonly Fam[] = ['ipv4', 'ipv6'];
const IPT: Record<Fam, { tool: string; save: string; restore: string }> = {
  ipv4: { tool: 'iptables', save: 'iptables-save', restore: 'iptables-restore' },
  ipv6: { tool: 'ip6tables', save: 'ip6tables-save', restore: 'ip6tables-restore' },
};

const host = (f: Fam, a: string) => (f === 'ipv4' ? `${a}/32` : `${a}/128`);
const loopback = (f: Fam) => (f === 'ipv4' ? '127.0.0.0/8' : '::1/128');
const addrOf = (f: Fam, p: Published) => (f === 'ipv4' ? p.v4 : p.v6);
const netOf = (f: Fam, n: BridgeNet) => (f === 'ipv4' ? n.v4.net : n.v6.net);
const dnatTo = (f: Fam, p: Published) => (f === 'ipv4' ? `${p.v4}:${p.ctPort}` : `[${p.v6}]:${p.ctPort}`);

/** Docker's own chains in each table (DOCKER-USER apart: it is the user's, and survives restarts). */
const DOCKER_CHAINS: Record<'filter' | 'nat', readonly string[]> = {
  filter: ['DOCKER', 'DOCKER-BRIDGE', 'DOCKER-CT', 'DOCKER-FORWARD', 'DOCKER-INTERNAL'],
  nat: ['DOCKER'],
};

/** Rules Docker puts in the built-in chains, as `[table, chain, args]` (the FORWARD jumps apart). */
function dockerBuiltinRules(f: Fam, s: ShapeInput): [string, string, string][] {
  const p = s.published;
  return [
    ['raw', 'PREROUTING', `-d ${host(f, addrOf(f, p))} ! -i ${p.net.bridge} -j DROP`],
    ['nat', 'PREROUTING', '-m addrtype --dst-type LOCAL -j DOCKER'],
    ['nat', 'OUTPUT', `! -d ${loopback(f)} -m addrtype --dst-type LOCAL -j DOCKER`],
    ...[...s.nets].reverse().map((n): [string, string, string] => ['nat', 'POSTROUTING', `-s ${netOf(f, n)} ! -o ${n.bridge} -j MASQUERADE`]),
  ];
}

/**
 * The iptables-restore --noflush input for one family. `fresh`: the first
 * start (sets Docker's FORWARD DROP policy, creates DOCKER-USER). Otherwise a
 * restart: policy and DOCKER-USER (with whatever is in it) are left alone.
 */
function dockerIptablesText(f: Fam, s: ShapeInput, fresh: boolean): string {
  const p = s.published;
  const builtin = dockerBuiltinRules(f, s);
  const rulesIn = (table: string) => builtin.filter((r) => r[0] === table).map(([, chain, args]) => `-A ${chain} ${args}`);
  const chainLines = (table: 'filter' | 'nat') => DOCKER_CHAINS[table].map((c) => `:${c} - [0:0]`);
  const filter = [
    '*filter',
    ...(fresh ? [':FORWARD DROP [0:0]'] : []),
    ...chainLines('filter'),
    ...(fresh ? [':DOCKER-USER - [0:0]'] : []),
    // EnsureJumpRule: each jump inserted at the top, DOCKER-USER last so it ends up first.
    '-I FORWARD 1 -j DOCKER-FORWARD',
    '-I FORWARD 1 -j DOCKER-USER',
    `-A DOCKER -d ${host(f, addrOf(f, p))} ! -i ${p.net.bridge} -o ${p.net.bridge} -p tcp -m tcp --dport ${p.ctPort} -j ACCEPT`,
    ...s.nets.map((n) => `-A DOCKER ! -i ${n.bridge} -o ${n.bridge} -j DROP`),
    ...s.nets.map((n) => `-A DOCKER-BRIDGE -o ${n.bridge} -j DOCKER`),
    ...s.nets.map((n) => `-A DOCKER-CT -o ${n.bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`),
    '-A DOCKER-FORWARD -j DOCKER-CT',
    '-A DOCKER-FORWARD -j DOCKER-INTERNAL',
    '-A DOCKER-FORWARD -j DOCKER-BRIDGE',
    ...s.nets.map((n) => `-A DOCKER-FORWARD -i ${n.bridge} -j ACCEPT`),
    'COMMIT',
  ];
  const nat = ['*nat', ...chainLines('nat'), ...rulesIn('nat'), `-A DOCKER ! -i ${p.net.bridge} -p tcp -m tcp --dport ${p.hostPort} -j DNAT --to-destination ${dnatTo(f, p)}`, 'COMMIT'];
  const raw = ['*raw', ...rulesIn('raw'), 'COMMIT'];
  return [...raw, ...nat, ...filter].join('\n') + '\n';
}

/** Remove what a stopping/restarting Docker removes: its jumps and rules in the built-in chains, then its chains (not DOCKER-USER). */
async function removeDockerIptables(x: Execer, ns: string, f: Fam, s: ShapeInput): Promise<void> {
  const tool = IPT[f].tool;
  const del: string[][] = [
    ['-t', 'filter', '-D', 'FORWARD', '-j', 'DOCKER-USER'],
    ['-t', 'filter', '-D', 'FORWARD', '-j', 'DOCKER-FORWARD'],
    ...dockerBuiltinRules(f, s).map(([table, chain, args]) => ['-t', table, '-D', chain, ...args.split(' ')]),
  ];
  for (const args of del) await must(x, ns, [tool, ...args]);
  for (const table of ['filter', 'nat'] as const) {
    for (const c of DOCKER_CHAINS[table]) await must(x, ns, [tool, '-t', table, '-F', c]);
    for (const c of DOCKER_CHAINS[table]) await must(x, ns, [tool, '-t', table, '-X', c]);
  }
}

/** Docker 29's nftables tables for one family (moby nftablesdoc, docker0 left out: the host has only our two bridges). */
function dockerNftText(f: Fam, s: ShapeInput): string {
  const ip = f === 'ipv4' ? 'ip' : 'ip6';
  const p = s.published;
  const map = (name: string, prefix: string) =>
    `\tmap ${name} {\n\t\ttype ifname : verdict\n\t\telements = { ${s.nets.map((n) => `"${n.bridge}" : jump ${prefix}__${n.bridge}`).join(', ')} }\n\t}`;
  const chain = (name: string, lines: string[]) => `\tchain ${name} {\n${lines.map((l) => `\t\t${l}\n`).join('')}\t}`;
  const perNet = s.nets.flatMap((n) => [
    chain(`filter-forward-in__${n.bridge}`, [
      'ct state established,related counter accept',
      `iifname "${n.bridge}" counter accept comment "ICC"`,
      ...(n === p.net ? [`${ip} daddr ${addrOf(f, p)} tcp dport ${p.ctPort} counter accept`] : []),
      'counter drop comment "UNPUBLISHED PORT DROP"',
    ]),
    chain(`filter-forward-out__${n.bridge}`, ['ct state established,related counter accept', 'counter accept comment "OUTGOING"']),
    chain(`nat-postrouting-in__${n.bridge}`, []),
    chain(`nat-postrouting-out__${n.bridge}`, [`oifname != "${n.bridge}" ${ip} saddr ${netOf(f, n)} counter masquerade comment "MASQUERADE"`]),
  ]);
  // Chains first: the verdict maps' elements name them.
  return [
    `table ${ip} docker-bridges {`,
    chain('filter-FORWARD', ['type filter hook forward priority filter; policy accept;', 'oifname vmap @filter-forward-in-jumps', 'iifname vmap @filter-forward-out-jumps']),
    chain('nat-OUTPUT', ['type nat hook output priority -100; policy accept;', `${ip} daddr != ${f === 'ipv4' ? '127.0.0.0/8' : '::1'} fib daddr type local counter jump nat-prerouting-and-output`]),
    chain('nat-POSTROUTING', ['type nat hook postrouting priority srcnat; policy accept;', 'iifname vmap @nat-postrouting-out-jumps', 'oifname vmap @nat-postrouting-in-jumps']),
    chain('nat-PREROUTING', ['type nat hook prerouting priority dstnat; policy accept;', 'fib daddr type local counter jump nat-prerouting-and-output']),
    // nft lists the output hook's dstnat priority as -100 (and older nft accepts only the number there).
    chain('nat-prerouting-and-output', [`iifname != "${p.net.bridge}" tcp dport ${p.hostPort} counter dnat to ${dnatTo(f, p)} comment "DNAT"`]),
    chain('raw-PREROUTING', ['type filter hook prerouting priority raw; policy accept;', `${ip} daddr ${addrOf(f, p)} iifname != "${p.net.bridge}" counter drop comment "DROP DIRECT ACCESS"`]),
    ...perNet,
    map('filter-forward-in-jumps', 'filter-forward-in'),
    map('filter-forward-out-jumps', 'filter-forward-out'),
    map('nat-postrouting-in-jumps', 'nat-postrouting-in'),
    map('nat-postrouting-out-jumps', 'nat-postrouting-out'),
    '}',
  ].join('\n') + '\n';
}

/** netavark's network ids (the first is podman's default network's); chain names take their first 8 characters. */
const NETAVARK_IDS = ['2f259bab93aaaaa2542ba43ef33eb990d0999ee1b9924b557b7be53c0b7a1bb9', '6b2a1e5dc0e8d1a5a3f0e7d4f4e9c1b0a8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3'];

/** get_subnet_chain_name: `.`→`_`, `:`→`-`, `/`→`_nm`. */
function nvChain(id: string, net: string, dnat = false): string {
  return `nv_${id.slice(0, 8)}_${net.replace(/\./g, '_').replace(/:/g, '-').replace('/', '_nm')}${dnat ? '_dnat' : ''}`;
}

function netavarkText(s: ShapeInput): string {
  const p = s.published;
  const pid = NETAVARK_IDS[s.nets.indexOf(p.net)]!;
  const subnets = s.nets.flatMap((n, i) => FAMS.map((f) => ({ f, ip: f === 'ipv4' ? 'ip' : 'ip6', net: netOf(f, n), id: NETAVARK_IDS[i]!, n })));
  const chain = (name: string, lines: string[]) => `\tchain ${name} {\n${lines.map((l) => `\t\t${l}\n`).join('')}\t}`;
  return [
    'table inet netavark {',
    chain('INPUT', ['type filter hook input priority filter; policy accept;', ...subnets.map((x) => `${x.ip} saddr ${x.net} meta l4proto { tcp, udp } th dport 53 accept`)]),
    chain('FORWARD', [
      'type filter hook forward priority filter; policy accept;',
      'ct state invalid drop',
      'jump NETAVARK-ISOLATION-1',
      ...subnets.flatMap((x) => [`${x.ip} daddr ${x.net} ct state established,related accept`, `${x.ip} saddr ${x.net} accept`]),
    ]),
    chain('POSTROUTING', ['type nat hook postrouting priority srcnat; policy accept;', 'meta mark & 0x00002000 == 0x00002000 masquerade', ...subnets.map((x) => `${x.ip} saddr ${x.net} jump ${nvChain(x.id, x.net)}`)]),
    chain('PREROUTING', ['type nat hook prerouting priority dstnat; policy accept;', 'fib daddr type local jump NETAVARK-HOSTPORT-DNAT']),
    chain('OUTPUT', ['type nat hook output priority -100; policy accept;', 'fib daddr type local jump NETAVARK-HOSTPORT-DNAT']),
    chain('NETAVARK-HOSTPORT-SETMARK', ['meta mark set meta mark | 0x00002000']),
    chain('NETAVARK-ISOLATION-2', []),
    chain('NETAVARK-ISOLATION-1', []),
    // Networks without isolation: their drops go first in ISOLATION-3 (inserted), which is never jumped to.
    chain('NETAVARK-ISOLATION-3', [...[...s.nets].reverse().map((n) => `oifname "${n.bridge}" drop`), 'jump NETAVARK-ISOLATION-2']),
    ...subnets.map((x) =>
      // netavark's IPv6 "multicast" prefix is its text ff::00/8 (ff::, not ff00::); nft masks it and lists ::/8.
      chain(nvChain(x.id, x.net), [`${x.ip} daddr ${x.net} accept`, `${x.ip} daddr != ${x.f === 'ipv4' ? '224.0.0.0/4' : 'ff::/8'} masquerade`]),
    ),
    ...FAMS.map((f) => {
      const ip = f === 'ipv4' ? 'ip' : 'ip6';
      return chain(nvChain(pid, netOf(f, p.net), true), [
        `${ip} saddr ${netOf(f, p.net)} tcp dport ${p.hostPort} jump NETAVARK-HOSTPORT-SETMARK`,
        ...(f === 'ipv4' ? [`ip saddr 127.0.0.1 tcp dport ${p.hostPort} jump NETAVARK-HOSTPORT-SETMARK`] : []),
        `tcp dport ${p.hostPort} dnat ${ip} to ${dnatTo(f, p)}`,
      ]);
    }),
    chain('NETAVARK-HOSTPORT-DNAT', FAMS.map((f) => `tcp dport ${p.hostPort} jump ${nvChain(pid, netOf(f, p.net), true)}`)),
    '}',
  ].join('\n') + '\n';
}

const NFT_TABLES: Record<'docker-nft' | 'netavark', readonly string[]> = {
  'docker-nft': ['ip docker-bridges', 'ip6 docker-bridges'],
  netavark: ['inet netavark'],
};

async function must(x: Execer, ns: string, argv: string[], input?: string): Promise<string> {
  const r = await x.run(argv[0]!, argv.slice(1), { netns: ns, ...(input !== undefined ? { input } : {}) });
  if (r.code !== 0) throw new Error(`${describeFailure(['ip', 'netns', 'exec', ns, ...argv], r)}${input !== undefined ? `\n--- input ---\n${input}` : ''}`);
  return r.stdout;
}

async function nftLoad(x: Execer, ns: string, shape: 'docker-nft' | 'netavark', s: ShapeInput): Promise<void> {
  const text = shape === 'netavark' ? netavarkText(s) : FAMS.map((f) => dockerNftText(f, s)).join('');
  await must(x, ns, ['nft', '-f', '-'], text);
}

/** Load `shape`'s rules into namespace `ns` (the host, before egress). */
export async function loadForeign(x: Execer, ns: string, shape: ForeignShape, s: ShapeInput): Promise<void> {
  switch (shape) {
    case 'docker-iptables':
      for (const f of FAMS) await must(x, ns, [IPT[f].restore, '--noflush'], dockerIptablesText(f, s, true));
      return;
    case 'docker-nft':
    case 'netavark':
      return nftLoad(x, ns, shape, s);
    case 'none':
      return;
  }
}

/**
 * Simulate the runtime restarting (see the header): for Docker's iptables
 * shape its chains and jumps are deleted and recreated, DOCKER-USER keeps its
 * rules and its jump goes back to the top of FORWARD; the nft shapes' tables
 * are deleted and loaded again. Nothing for 'none'.
 */
export async function restartForeign(x: Execer, ns: string, shape: ForeignShape, s: ShapeInput): Promise<void> {
  switch (shape) {
    case 'docker-iptables':
      for (const f of FAMS) {
        await removeDockerIptables(x, ns, f, s);
        await must(x, ns, [IPT[f].restore, '--noflush'], dockerIptablesText(f, s, false));
      }
      return;
    case 'docker-nft':
    case 'netavark':
      await must(x, ns, ['nft', '-f', '-'], NFT_TABLES[shape].map((t) => `delete table ${t}\n`).join(''));
      return nftLoad(x, ns, shape, s);
    case 'none':
      return;
  }
}

/**
 * The foreign objects as the kernel lists them, one entry per table: nft
 * tables stateless (`nft -s`: no counter values), iptables tables as
 * `iptables-save -t TABLE` with chain counters zeroed and every line naming
 * an EGRESS chain left out (egress's own chains and jumps, including a jump
 * in DOCKER-USER). Empty for 'none'.
 */
export async function foreignText(x: Execer, ns: string, shape: ForeignShape): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  switch (shape) {
    case 'docker-iptables':
      for (const f of FAMS)
        for (const table of ['raw', 'nat', 'filter']) {
          const text = await must(x, ns, [IPT[f].save, '-t', table]);
          out[`${IPT[f].tool} ${table}`] = normalizeRuleset(text)
            .split('\n')
            .filter((l) => !/egress/i.test(l) && !/^#/.test(l))
            .join('\n');
        }
      break;
    case 'docker-nft':
    case 'netavark':
      for (const t of NFT_TABLES[shape]) out[t] = normalizeRuleset(await must(x, ns, ['nft', '-s', 'list', 'table', ...t.split(' ')]));
      break;
    case 'none':
      break;
  }
  return out;
}

/** sha256 of each entry of `foreignText`. */
export async function foreignHashIn(x: Execer, ns: string, shape: ForeignShape): Promise<Record<string, string>> {
  const t = await foreignText(x, ns, shape);
  return Object.fromEntries(Object.entries(t).map(([k, v]) => [k, sha256(v)]));
}
