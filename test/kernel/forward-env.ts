/**
 * A container host in network namespaces, for the kernel tests of the
 * `forward:` scope (SPEC §6): traffic the host routes for its containers
 * goes through prerouting → forward → postrouting, never output.
 *
 *   ct1 198.51.100.2   2001:db8:c1::2 ─┐
 *   ct2 198.51.100.3   2001:db8:c1::3 ─┤ br-test 198.51.100.1/25, 2001:db8:c1::1/64
 *                                       │
 *   ct9 198.51.100.130 2001:db8:c9::2 ── br-new  198.51.100.129/25, 2001:db8:c9::1/64  (listed in no source)
 *                                       │
 *                      h (the host: ip_forward on, foreign rules, egress)
 *                                       │ up0 192.0.2.1/24, 2001:db8:f::1/64, default routes via w
 *   w (the world) 192.0.2.2, 2001:db8:f::2; every address of 203.0.113.0/24 and
 *   2001:db8:ff::/64 is its own (local routes on lo), answering TCP and UDP
 *   (the lab's world listener) and ICMP echo; routes back to the container
 *   networks via h (used when nothing masquerades: the 'none' shape).
 *
 * Every interface is created inside a namespace of ours (a veth's peer goes
 * straight into its namespace), never in the root namespace; the forwarding
 * sysctls are set inside h only. Neighbour entries are static, so nothing
 * depends on ARP or IPv6 neighbour discovery (an egress policy in h cannot
 * break the links). Documentation addresses only; the prober (src/lab/
 * probe.ts) refuses anything else.
 *
 * Foreign rules (forward-shapes.ts) are loaded into h before anything else.
 * netfilter logging from these namespaces needs the root namespace's
 * `nf_log_all_netns`: a test that reads log lines uses test/kernel/
 * log-all-netns.ts (set for the file, restored after); this kit never sets it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll } from 'vitest';
import { dirname } from 'node:path';
import { uniqueTag } from '../../src/kernel/netns.js';
import { buildCli } from './lifecycle-env.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LinuxTarget } from '../../src/backends/types.js';
import type { Execer, RunResult, Started } from '../../src/kernel/exec.js';
import { cleanup, createNetns, ipBatch, netnsName, NetnsError, sweepStale, sysctl } from '../../src/kernel/netns.js';
import { runProbes, type Probe, type ProbeOptions, type ProbeProto, type ProbeResult } from '../../src/lab/probe.js';
import { withTimeout } from '../../src/lab/world.js';
import { WORLD_LISTENER_SOURCE } from '../../src/lab/world-listener.js';
import { FOREIGN_SHAPES, foreignHashIn, foreignText as foreignTextIn, loadForeign, restartForeign, type BridgeNet, type ForeignShape, type ShapeInput } from './forward-shapes.js';

export { FOREIGN_SHAPES, type ForeignShape };

/** The bridge networks of h (interface names as h sees them). */
export const BR_TEST: BridgeNet = { bridge: 'br-test', v4: { net: '198.51.100.0/25', gateway: '198.51.100.1' }, v6: { net: '2001:db8:c1::/64', gateway: '2001:db8:c1::1' } };
export const BR_NEW: BridgeNet = { bridge: 'br-new', v4: { net: '198.51.100.128/25', gateway: '198.51.100.129' }, v6: { net: '2001:db8:c9::/64', gateway: '2001:db8:c9::1' } };

/** Every address of the topology. */
export const FWD = {
  h: { up: 'up0', v4: '192.0.2.1', v6: '2001:db8:f::1' },
  w: { v4: '192.0.2.2', v6: '2001:db8:f::2', pool: { v4: '203.0.113.0/24', v6: '2001:db8:ff::/64' } },
  ct1: { v4: '198.51.100.2', v6: '2001:db8:c1::2', net: BR_TEST },
  ct2: { v4: '198.51.100.3', v6: '2001:db8:c1::3', net: BR_TEST },
  ct9: { v4: '198.51.100.130', v6: '2001:db8:c9::2', net: BR_NEW },
  /** World addresses for probes: one an ordinary policy allows (tcp/443), one it lists nowhere. */
  allowed: { v4: '203.0.113.10', v6: '2001:db8:ff::10' },
  unlisted: { v4: '203.0.113.99', v6: '2001:db8:ff::99' },
  /** Published port: h's 192.0.2.1:8080 and [2001:db8:f::1]:8080 → ct1:80 (not under 'none'). */
  published: { hostPort: 8080, ctPort: 80 },
} as const;

/** Ports the world answers on (every address of its pools). */
export const WORLD_PORTS = { tcp: [80, 443], udp: [53, 443] } as const;
/** Ports ct1 and ct2 answer on (the published port's target, and intra-bridge probes). */
export const CT_PORTS = { tcp: [80], udp: [80] } as const;

export type Node = 'h' | 'ct1' | 'ct2' | 'ct9' | 'w';
type Ct = 'ct1' | 'ct2' | 'ct9';
const CTS: readonly Ct[] = ['ct1', 'ct2', 'ct9'];

export interface ForwardWorld {
  x: Execer;
  tag: string;
  shape: ForeignShape;
  /** Namespace names. */
  ns: Record<Node, string>;
  /** Whether a port is published (every shape but 'none'). */
  published: boolean;
  /** Delete everything (namespaces, servers); safe to call twice. Also runs on SIGINT/SIGTERM. */
  close(): Promise<void>;
}

const SHAPE_INPUT: ShapeInput = {
  nets: [BR_TEST, BR_NEW],
  published: { net: BR_TEST, hostPort: FWD.published.hostPort, ctPort: FWD.published.ctPort, v4: FWD.ct1.v4, v6: FWD.ct1.v6 },
};

// Locally administered MACs, fixed so the neighbour entries can be static.
const MAC = {
  brTest: '02:65:66:00:00:01',
  brNew: '02:65:66:00:00:02',
  up: '02:65:66:00:00:03',
  w: '02:65:66:00:00:04',
  ct: { ct1: '02:65:66:00:01:01', ct2: '02:65:66:00:01:02', ct9: '02:65:66:00:01:09' },
  hostEnd: { ct1: '02:65:66:00:02:01', ct2: '02:65:66:00:02:02', ct9: '02:65:66:00:02:09' },
} as const;

const NO_DAD = {
  'net.ipv6.conf.all.accept_dad': 0,
  'net.ipv6.conf.default.accept_dad': 0,
  'net.ipv6.conf.default.router_solicitations': 0,
  'net.ipv6.conf.default.accept_ra': 0,
};

const prefixLen = (net: string) => net.slice(net.indexOf('/'));
const brMac = (n: BridgeNet) => (n === BR_TEST ? MAC.brTest : MAC.brNew);

/** Start the lab's world listener in `ns` answering on `ports`; stopped by the returned Started. */
async function startListener(x: Execer, ns: string, ports: { tcp: readonly number[]; udp: readonly number[] }): Promise<Started> {
  const s = x.start(process.execPath, ['--input-type=module', '-e', WORLD_LISTENER_SOURCE], { netns: ns });
  try {
    const hello = await withTimeout(s.nextLine(), 10_000, `listener in ${ns} did not start`);
    if (hello !== 'ready') throw new NetnsError(`listener in ${ns} said ${JSON.stringify(hello)}`);
    s.write(JSON.stringify({ tcp: ports.tcp, udp: ports.udp }) + '\n');
    const ok = await withTimeout(s.nextLine(), 20_000, `listener in ${ns} did not answer`);
    if (ok !== 'ok') throw new NetnsError(`listener in ${ns}: ${ok}`);
    return s;
  } catch (e) {
    await s.stop();
    throw e;
  }
}

/**
 * Create the topology with `shape`'s foreign rules loaded in h (before
 * egress, which the caller applies). Namespaces are `egress-<tag>-f{h,ct1,
 * ct2,ct9,w}`; `tag` must be unique (src/kernel/netns.ts `uniqueTag()`).
 * On any failure everything created so far is deleted before it throws.
 */
export async function forwardWorld(x: Execer, tag: string, shape: ForeignShape): Promise<ForwardWorld> {
  await sweepStale(x);
  const ns: Record<Node, string> = { h: netnsName(tag, 'fh'), ct1: netnsName(tag, 'fct1'), ct2: netnsName(tag, 'fct2'), ct9: netnsName(tag, 'fct9'), w: netnsName(tag, 'fw') };
  const undo: (() => Promise<void>)[] = [];
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    cleanup.remove(id);
    for (const u of undo.splice(0).reverse()) await u().catch(() => {});
  };
  // On SIGINT/SIGTERM too (the namespaces are also registered on their own, by createNetns).
  const id = cleanup.add(close);
  try {
    for (const n of Object.values(ns)) undo.push(await createNetns(x, n));
    for (const n of Object.values(ns)) await sysctl(x, n, NO_DAD);
    await sysctl(x, ns.h, { 'net.ipv4.ip_forward': 1, 'net.ipv6.conf.all.forwarding': 1 });
    await sysctl(x, ns.w, { 'net.ipv4.ip_nonlocal_bind': 1, 'net.ipv6.ip_nonlocal_bind': 1 });

    const h: string[] = [];
    for (const n of [BR_TEST, BR_NEW]) {
      h.push(
        `link add ${n.bridge} address ${brMac(n)} type bridge`,
        `addr add ${n.v4.gateway}${prefixLen(n.v4.net)} dev ${n.bridge}`,
        `addr add ${n.v6.gateway}${prefixLen(n.v6.net)} dev ${n.bridge} nodad`,
        `link set ${n.bridge} up`,
      );
    }
    for (const c of CTS) {
      const hostEnd = `veth-${c}`;
      const { net } = FWD[c];
      h.push(
        `link add ${hostEnd} address ${MAC.hostEnd[c]} type veth peer name eth0 address ${MAC.ct[c]} netns ${ns[c]}`,
        `link set ${hostEnd} master ${net.bridge}`,
        `link set ${hostEnd} up`,
        `neigh replace ${FWD[c].v4} lladdr ${MAC.ct[c]} dev ${net.bridge} nud permanent`,
        `neigh replace ${FWD[c].v6} lladdr ${MAC.ct[c]} dev ${net.bridge} nud permanent`,
      );
    }
    h.push(
      `link add ${FWD.h.up} address ${MAC.up} type veth peer name eth0 address ${MAC.w} netns ${ns.w}`,
      `addr add ${FWD.h.v4}/24 dev ${FWD.h.up}`,
      `addr add ${FWD.h.v6}/64 dev ${FWD.h.up} nodad`,
      `link set ${FWD.h.up} up`,
      `neigh replace ${FWD.w.v4} lladdr ${MAC.w} dev ${FWD.h.up} nud permanent`,
      `neigh replace ${FWD.w.v6} lladdr ${MAC.w} dev ${FWD.h.up} nud permanent`,
      `route add default via ${FWD.w.v4} dev ${FWD.h.up}`,
      `route add default via ${FWD.w.v6} dev ${FWD.h.up}`,
    );
    await ipBatch(x, ns.h, h);

    for (const c of CTS) {
      const { net } = FWD[c];
      const mates = CTS.filter((o) => o !== c && FWD[o].net === net);
      await ipBatch(x, ns[c], [
        `addr add ${FWD[c].v4}${prefixLen(net.v4.net)} dev eth0`,
        `addr add ${FWD[c].v6}${prefixLen(net.v6.net)} dev eth0 nodad`,
        'link set eth0 up',
        `neigh replace ${net.v4.gateway} lladdr ${brMac(net)} dev eth0 nud permanent`,
        `neigh replace ${net.v6.gateway} lladdr ${brMac(net)} dev eth0 nud permanent`,
        ...mates.flatMap((o) => [`neigh replace ${FWD[o].v4} lladdr ${MAC.ct[o]} dev eth0 nud permanent`, `neigh replace ${FWD[o].v6} lladdr ${MAC.ct[o]} dev eth0 nud permanent`]),
        `route add default via ${net.v4.gateway} dev eth0`,
        `route add default via ${net.v6.gateway} dev eth0`,
      ]);
    }

    await ipBatch(x, ns.w, [
      `addr add ${FWD.w.v4}/24 dev eth0`,
      `addr add ${FWD.w.v6}/64 dev eth0 nodad`,
      'link set eth0 up',
      `neigh replace ${FWD.h.v4} lladdr ${MAC.up} dev eth0 nud permanent`,
      `neigh replace ${FWD.h.v6} lladdr ${MAC.up} dev eth0 nud permanent`,
      `route add local ${FWD.w.pool.v4} dev lo`,
      `route add local ${FWD.w.pool.v6} dev lo`,
      ...[BR_TEST, BR_NEW].flatMap((n) => [`route add ${n.v4.net} via ${FWD.h.v4} dev eth0`, `route add ${n.v6.net} via ${FWD.h.v6} dev eth0`]),
    ]);

    await loadForeign(x, ns.h, shape, SHAPE_INPUT);

    for (const [n, ports] of [['w', WORLD_PORTS], ['ct1', CT_PORTS], ['ct2', CT_PORTS]] as const) {
      const s = await startListener(x, ns[n], ports);
      undo.push(async () => void (await s.stop()));
    }
  } catch (e) {
    await close();
    throw e;
  }
  return { x, tag, shape, ns, published: shape !== 'none', close };
}

/** The foreign objects in h as listed (see forward-shapes.ts `foreignText`): for a readable diff. */
export function foreignText(w: ForwardWorld): Promise<Record<string, string>> {
  return foreignTextIn(w.x, w.ns.h, w.shape);
}

/** sha256 per foreign table in h (`{}` under 'none'): equal before and after means byte-identical. */
export function foreignHash(w: ForwardWorld): Promise<Record<string, string>> {
  return foreignHashIn(w.x, w.ns.h, w.shape);
}

/** Simulate the runtime restarting while egress is live (forward-shapes.ts `restartForeign`). */
export function dockerRestart(w: ForwardWorld): Promise<void> {
  return restartForeign(w.x, w.ns.h, w.shape, SHAPE_INPUT);
}

/** Probes (as root) to each of `dsts`: tcp to each of `tcp`, udp to each of `udp`, and an ICMP echo unless `icmp: false`. */
export function flowProbes(dsts: readonly string[], ports: { tcp?: readonly number[]; udp?: readonly number[]; icmp?: boolean }): Probe[] {
  const one = (proto: ProbeProto, dst: string, port?: number): Probe => ({ proto, dst, ...(port !== undefined ? { port } : {}), uid: 0, gid: 0 });
  return dsts.flatMap((dst) => [
    ...(ports.tcp ?? []).map((p) => one('tcp', dst, p)),
    ...(ports.udp ?? []).map((p) => one('udp', dst, p)),
    ...(ports.icmp === false ? [] : [one('icmp', dst)]),
  ]);
}

/** Run `probes` from node `from` (src/lab/probe.ts: accepted / rejected / dropped / error). */
export function probeFrom(w: ForwardWorld, from: Node, probes: readonly Probe[], opts: ProbeOptions = {}): Promise<ProbeResult[]> {
  return runProbes(w.x, w.ns[from], probes, opts);
}

/** From w, tcp to the published port on h's uplink addresses (both families); accepted = ct1's server answered through the DNAT. */
export function probePublished(w: ForwardWorld, opts: ProbeOptions = {}): Promise<ProbeResult[]> {
  return probeFrom(w, 'w', flowProbes([FWD.h.v4, FWD.h.v6], { tcp: [FWD.published.hostPort], icmp: false }), opts);
}

/** ct1 → ct2 on the same bridge: tcp, udp and ICMP echo, both families. */
export function probeIntra(w: ForwardWorld, opts: ProbeOptions = {}): Promise<ProbeResult[]> {
  return probeFrom(w, 'ct1', flowProbes([FWD.ct2.v4, FWD.ct2.v6], CT_PORTS), opts);
}

/** One line per result, `tcp/80 203.0.113.99: accepted (connected)`: for assertions whose diff says which probe. */
export function outcomeLines(rs: readonly ProbeResult[]): string[] {
  return rs.map((r) => `${r.probe.proto}${r.probe.port !== undefined ? `/${r.probe.port}` : ''} ${r.probe.dst}: ${r.outcome}`);
}

/** `outcomeLines` with every outcome replaced by `outcome`: what `outcomeLines(rs)` should equal. */
export function expectedLines(rs: readonly ProbeResult[], outcome: ProbeResult['outcome']): string[] {
  return outcomeLines(rs.map((r) => ({ ...r, outcome })));
}

/** Runs egress (the compiled CLI) inside h with its own state directory. */
export interface EgressInHost {
  stateDir: string;
  /** `egress ARGS` in h (EGRESS_STATE_DIR set, no SSH session, the process watchdog). */
  run(args: readonly string[]): Promise<RunResult>;
  /** Write `policy` to a file and `egress apply --backend BACKEND` it; throws with egress's words unless it exits 0. */
  apply(policy: string, backend: LinuxTarget): Promise<RunResult>;
  /** `egress remove`; throws unless it exits 0. */
  remove(): Promise<RunResult>;
  /** Delete the state directory (after `remove`, or with the world). */
  close(): void;
}

/**
 * egress in h through the compiled CLI (`buildCli` in lifecycle-env.ts,
 * once per file): `ip netns exec <h> node <cli> …`. The state directory is a
 * fresh temporary directory.
 */
export function egressIn(w: ForwardWorld, cli: string): EgressInHost {
  const dir = mkdtempSync(join(tmpdir(), 'egress-fwd-'));
  const stateDir = join(dir, 'state');
  const run = (args: readonly string[]) =>
    w.x.run(process.execPath, [cli, ...args], { netns: w.ns.h, env: { EGRESS_STATE_DIR: stateDir, EGRESS_WATCHDOG: 'process', SSH_CONNECTION: '' }, timeoutMs: 60_000 });
  const must = async (args: readonly string[]) => {
    const r = await run(args);
    if (r.code !== 0) throw new Error(`egress ${args.join(' ')} in ${w.ns.h}: exit ${r.code}\n${r.stderr}${r.stdout}`);
    return r;
  };
  let n = 0;
  return {
    stateDir,
    run,
    apply: (policy, backend) => {
      const file = join(dir, `policy-${++n}.yaml`);
      writeFileSync(file, policy);
      return must(['apply', '--backend', backend, file]);
    },
    remove: () => must(['remove']),
    close: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** In a kernelDescribe body: the CLI compiled once for the file (`buildCli`), removed after it. */
export function useCli(name: string): { path: string } {
  const cli = { path: '' };
  beforeAll(() => {
    cli.path = buildCli(name);
  }, 180_000);
  afterAll(() => {
    if (cli.path) rmSync(dirname(dirname(cli.path)), { recursive: true, force: true });
  });
  return cli;
}

/** In a describe body: one forward world of `shape` for its tests, made (then `prepare`d) before them, deleted after. */
export function useForwardWorld(x: Execer, shape: ForeignShape, prepare?: (w: ForwardWorld) => Promise<void>): { w: ForwardWorld } {
  const it = {} as { w: ForwardWorld };
  beforeAll(async () => {
    it.w = await forwardWorld(x, uniqueTag(), shape);
    await prepare?.(it.w);
  }, 60_000);
  afterAll(async () => {
    await it.w?.close();
  }, 60_000);
  return it;
}
