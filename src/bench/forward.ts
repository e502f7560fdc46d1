/**
 * The forward-path benchmark (bench/forward.mjs runs it from dist/): what the
 * forward scope (SPEC §6) costs forwarded traffic, nft sets versus the
 * iptables backend's linear chain, against no firewall at all and against
 * the same policy with the forward scope off (output only), all measured in
 * the same run.
 *
 *   client (…-c<k>)            host (…-h<k>, the lab's host)           world
 *   eth0 2001:2:0:c0KK::2/64 ── fwcK ::1/64, forwarding on ── veth ── every documentation address
 *   route 2001:db8::/32 → host                                           route 2001:2:0:c0KK::/64 → host
 *
 * One host namespace (and its client) per variant, measured in rotating
 * order, `rounds` times. For each N, the policy (default reject) has a
 * forward source `clients` (interface `fwc*`, networks 198.19.0.0/16 and
 * 2001:2:0:c000::/56, which every client lies in), and, from it: an allow
 * rule naming N separate IPv6 addresses (the kernel bench's `{ file: }`
 * set) on tcp/443 and udp/53, a deny rule (203.0.113.0/24 and
 * 2001:db8:ffff::/48, every protocol: a set lookup each new flow pays
 * first), and a one-address allow of ICMPv6 echo for the established-flow
 * probe. The load goes to the address that sorts last.
 *
 * Variants: `none` (forwarding, no ruleset); `output-only` (the same policy
 * with no `forward:` and no `from:`, as nft: the host's chain only, and
 * connection tracking on for every packet, as any stateful egress ruleset
 * turns it on); `nft` and `iptables` with the forward scope.
 *
 * Metrics, run metric by metric with every variant one after the other
 * (rotating order), so that the runs a ratio pairs are close in time:
 *  - TCP setups, client → world port 443 (16 in flight, RST close): every
 *    SYN is a new forwarded flow and crosses the forward chain;
 *  - UDP datagrams, client → world port 53 (nothing listens; the world drops
 *    them), counted by the host as it forwards them (Ip6OutForwDatagrams): a
 *    raw-table `notrack` for UDP in the host of every variant (baseline too)
 *    makes every datagram cross the whole forward chain like a first packet;
 *  - ICMPv6 echo round trips on one flow (`ping -f`, one in flight, the
 *    world's kernel answers): after the first, every packet both ways is
 *    `established`, the fast path; a round trip is two forwarded packets.
 * Each is reported as a rate per wall second and as the sender's CPU time
 * per unit. On veth a packet's whole way (the host's forward hook, the
 * world's answer) runs in softirq in the sender's context and is charged to
 * it, so the CPU time is the path's cost without the wait for a CPU that
 * makes wall rates noisy on a shared machine. Ratios and added µs are taken
 * round by round against the baseline's run of the same round, then the
 * median and interquartile range over rounds.
 *
 * Times are printed, never asserted.
 */
import type { LinuxTarget } from '../backends/types.js';
import type { Execer } from '../kernel/exec.js';
import { describeFailure, realExecer } from '../kernel/exec.js';
import { createNetns, ipBatch, netnsName, sysctl } from '../kernel/netns.js';
import { mustRun } from '../kernel/where.js';
import { DOC_PREFIXES, World, type Host } from '../lab/world.js';
import { benchAddress, compileAndLoad, loadBenchPolicy, median, quantile, roundRatios, runLoad } from './kernel.js';

export interface FwdBenchOptions {
  sizes: number[];
  /** iptables is measured only up to this many destinations (its load and its chain grow with N). */
  iptablesMax: number;
  rounds: number;
  durationMs: number;
  tcpConcurrency: number;
  udpConcurrency: number;
  /** Extra allow rules from the source (one /64 each), all checked before the rule the load matches: the cost of rules, not destinations. */
  rules: number;
  execer?: Execer;
  progress?: (line: string) => void;
}

export const DEFAULT_FWD_BENCH: FwdBenchOptions = { sizes: [1000, 10_000, 100_000], iptablesMax: 100_000, rounds: 9, durationMs: 1000, tcpConcurrency: 16, udpConcurrency: 64, rules: 0 };

export type FwdVariant = 'none' | 'output-only' | LinuxTarget;

/** A median over rounds and its interquartile range. */
export interface Stat {
  median: number;
  iqr: [number, number];
}

/** One variant's numbers against one baseline, per round then the median. */
export interface Comparison {
  /** Rate / the baseline's rate. */
  rate: Stat;
  /** The baseline's CPU per unit / this one's: the rate ratio if the sender's CPU were the limit. */
  cpu: Stat;
  /** CPU µs added per unit (per forwarded packet for ping: half a round trip). */
  addedUs: Stat;
}

export interface MetricRow {
  /** Median over rounds: units per wall second, and the sender's CPU µs per unit. */
  rate: number;
  cpuUs: number;
  /** Failed connects, lost echo requests, datagrams sent but not forwarded, over all rounds. */
  lost: number;
  vsNone: Comparison;
  vsOutputOnly: Comparison;
}

export interface FwdBenchRow {
  n: number;
  variant: FwdVariant;
  compileMs?: number;
  loadMs?: number;
  /** New flows: TCP connection setups. */
  tcp: MetricRow;
  /** Every datagram through the whole forward chain (untracked UDP), counted as the host forwarded it. */
  udp: MetricRow;
  /** Established fast path: ICMPv6 echo round trips on one flow. */
  ping: MetricRow;
}

/** The host's interface towards its client: what the source's `fwc*` glob names. */
const CLIENT_IF = 'fwc0';
const SOURCE_NETWORKS = ['198.19.0.0/16', '2001:2:0:c000::/56'];
const DENIED = ['203.0.113.0/24', '2001:db8:ffff::/48'];

/**
 * The bench policy; `forward: false` is the same policy with the forward
 * scope off (every rule the host's own). `rules` extra allow rules
 * (`a000`…, each one /64 of 2001:db8:fe::/48 on tcp/443 and udp/53) sort
 * before `many` (the IR orders rules by name), so every new flow of the
 * load is checked against all of them first.
 */
export function forwardPolicyText(pingTarget: string, forward: boolean, rules = 0): string {
  if (rules > 0x10000) throw new Error('at most 65,536 extra rules');
  const from = forward ? ['    from: [clients]'] : [];
  const extra = Array.from({ length: rules }, (_, i) => [
    `  - name: a${String(i).padStart(3, '0')}`,
    ...from,
    '    reason: one of many rules',
    `    to: ["2001:db8:fe:${i.toString(16)}::/64"]`,
    '    ports: [tcp/443, udp/53]',
  ]).flat();
  return [
    'version: 1',
    'default: reject',
    ...(forward ? ['forward:', '  sources:', `    clients: { interfaces: ["fwc*"], networks: [${SOURCE_NETWORKS.map((n) => JSON.stringify(n)).join(', ')}] }`] : []),
    'sets:',
    '  many: { file: dests.txt }',
    'allow:',
    ...extra,
    '  - name: many',
    ...from,
    '    reason: benchmark destinations',
    '    to: [$many]',
    '    ports: [tcp/443, udp/53]',
    '  - name: ping',
    ...from,
    '    reason: the established-flow probe',
    `    to: ["${pingTarget}"]`,
    '    icmp: [echo-request]',
    'deny:',
    '  - name: blocked',
    ...from,
    '    reason: a deny every new flow is checked against first',
    `    to: [${DENIED.map((n) => JSON.stringify(n)).join(', ')}]`,
    '',
  ].join('\n');
}

/** Every datagram through the whole forward chain, not only a flow's first (every variant, baseline included). */
const NOTRACK_UDP = 'table inet egressbench {\n  chain raw { type filter hook prerouting priority raw; policy accept; meta l4proto udp notrack; }\n}\n';

export interface FwdPath {
  host: Host;
  client: string;
  close(): Promise<void>;
}

/** A lab host with forwarding on and a client namespace behind it, on interface `fwc0`; routes both ways through the host. */
export async function forwardPath(world: World, x: Execer): Promise<FwdPath> {
  const host = await world.addHost();
  const k = host.index;
  const hex = k.toString(16).padStart(2, '0');
  const client = netnsName(world.tag, `c${k.toString(36)}`);
  const net = `2001:2:0:c0${hex}::`;
  const mac = (end: string) => `02:65:66:${hex}:00:${end}`;
  let removeClient: (() => Promise<void>) | undefined;
  try {
    removeClient = await createNetns(x, client);
    await sysctl(x, client, {
      'net.ipv6.conf.all.accept_dad': 0,
      'net.ipv6.conf.default.accept_dad': 0,
      'net.ipv6.conf.default.router_solicitations': 0,
      'net.ipv6.conf.default.accept_ra': 0,
      'net.ipv4.ip_local_port_range': '1024 65535',
    });
    await sysctl(x, host.ns, { 'net.ipv6.conf.all.forwarding': 1, 'net.ipv4.ip_forward': 1 });
    // Created inside the host namespace with its peer straight in the client: never in the root namespace.
    await ipBatch(x, host.ns, [
      `link add ${CLIENT_IF} address ${mac('01')} type veth peer name eth0 address ${mac('02')} netns ${client}`,
      `addr add ${net}1/64 dev ${CLIENT_IF} nodad`,
      `link set ${CLIENT_IF} up`,
      `neigh replace ${net}2 lladdr ${mac('02')} dev ${CLIENT_IF} nud permanent`,
    ]);
    await ipBatch(x, client, [
      `addr add ${net}2/64 dev eth0 nodad`,
      'link set eth0 up',
      `neigh replace ${net}1 lladdr ${mac('01')} dev eth0 nud permanent`,
      ...DOC_PREFIXES.ipv6.map((p) => `route add ${p} via ${net}1 dev eth0`),
    ]);
    // The world's way back to the client: through this host's link (it goes when the link does).
    await ipBatch(x, world.ns, [`route add ${net}/64 via 2001:2:0:${k.toString(16)}::1`]);
  } catch (e) {
    await removeClient?.();
    await host.close();
    throw e;
  }
  const remove = removeClient;
  return {
    host,
    client,
    close: async () => {
      await x.run('ip', ['-n', client, 'link', 'del', 'eth0']);
      await remove();
      await host.close();
    },
  };
}

async function forwardedDatagrams(x: Execer, ns: string): Promise<number> {
  const r = await x.run('cat', ['/proc/net/snmp6'], { netns: ns });
  const m = /^Ip6OutForwDatagrams\s+(\d+)$/m.exec(r.stdout);
  if (r.code !== 0 || !m) throw new Error(`cannot read Ip6OutForwDatagrams in ${ns}: ${describeFailure(['cat', '/proc/net/snmp6'], r)}`);
  return Number(m[1]);
}

/** One run of one metric: a rate (per wall second) and the sender's CPU µs per counted unit. */
interface Sample {
  rate: number;
  cpuUs: number;
  /** Failed connects, lost echo requests, datagrams sent but not forwarded. */
  lost: number;
}

const METRICS = ['tcp', 'udp', 'ping'] as const;
type Metric = (typeof METRICS)[number];

async function measure(x: Execer, p: FwdPath, dst: string, o: FwdBenchOptions, m: Metric): Promise<Sample> {
  if (m === 'tcp') {
    const t = await runLoad(x, p.client, dst, o, 'tcp');
    return { rate: (t.count * 1000) / t.elapsedMs, cpuUs: t.cpuUs / t.count, lost: t.errors };
  }
  if (m === 'udp') {
    // Counted by the host, not the sender: a datagram the host did not forward does not count.
    const before = await forwardedDatagrams(x, p.host.ns);
    const u = await runLoad(x, p.client, dst, o, 'udp');
    const forwarded = (await forwardedDatagrams(x, p.host.ns)) - before;
    return { rate: (forwarded * 1000) / u.elapsedMs, cpuUs: u.cpuUs / forwarded, lost: Math.max(0, u.count - forwarded) };
  }
  return measurePing(x, p, dst, o.durationMs);
}

/**
 * ICMPv6 echo round trips on one flow, one in flight (`ping -f`), and
 * ping's CPU time per round trip (bash's `times`: the children's user +
 * system time, exact to the millisecond). On veth the whole round trip —
 * the host's forward hook both ways, the world's reply — runs in softirq
 * in the sender's context, so it is charged to ping.
 */
async function measurePing(x: Execer, p: FwdPath, dst: string, durationMs: number): Promise<Sample> {
  const argv = ['bash', '-c', 'ping -6 -f -q -w "$1" "$2"; code=$?; times; exit $code', 'ping', String(Math.max(1, Math.round(durationMs / 1000))), dst];
  const r = await x.run(argv[0]!, argv.slice(1), { netns: p.client, timeoutMs: durationMs + 30_000 });
  const m = /(\d+) packets transmitted, (\d+) received.*time (\d+)ms/.exec(r.stdout);
  const t = /^(\d+)m([\d.]+)s (\d+)m([\d.]+)s\s*$/m.exec(r.stdout.trimEnd().split('\n').at(-1) ?? '');
  if (!m || !t || Number(m[2]) === 0) throw new Error(`ping through the forward path: ${describeFailure(argv, r)}`);
  const [sent, got, ms] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const cpuUs = (Number(t[1]) * 60 + Number(t[2]) + Number(t[3]) * 60 + Number(t[4])) * 1e6;
  // The request in flight at the deadline is counted as lost by ping: not a loss.
  return { rate: (got * 1000) / ms, cpuUs: cpuUs / got, lost: Math.max(0, sent - got - 1) };
}

const stat = (xs: number[]): Stat => ({ median: median(xs), iqr: [quantile(xs, 0.25), quantile(xs, 0.75)] });
/** Per round: the variant's CPU µs per unit minus the baseline's, divided by `per`. */
const added = (xs: number[], base: number[], per = 1): Stat => stat(xs.map((v, i) => (v - base[i]!) / per));

export async function runForwardBench(opts: Partial<FwdBenchOptions> = {}): Promise<FwdBenchRow[]> {
  const o = { ...DEFAULT_FWD_BENCH, ...opts };
  const x = o.execer ?? realExecer();
  const say = o.progress ?? (() => {});
  const rows: FwdBenchRow[] = [];
  const world = await World.create(x);
  try {
    await world.listen({ tcp: [443] });
    for (const n of o.sizes) {
      const variants: FwdVariant[] = ['none', 'output-only', 'nft', ...(n <= o.iptablesMax ? (['iptables'] as const) : [])];
      const dests = Array.from({ length: n }, (_, k) => benchAddress(k));
      const dst = dests[n - 1]!;
      const files = { [`/bench/dests.txt`]: dests.join('\n') + '\n' };
      const withForward = await loadBenchPolicy(forwardPolicyText(dst, true, o.rules), files);
      const outputOnly = await loadBenchPolicy(forwardPolicyText(dst, false, o.rules), files);
      const paths = new Map<FwdVariant, FwdPath>();
      const meta = new Map<FwdVariant, { compileMs?: number; loadMs?: number }>();
      try {
        for (const v of variants) {
          const p = await forwardPath(world, x);
          paths.set(v, p);
          await mustRun({ execer: x, netns: p.host.ns }, ['nft', '-f', '-'], NOTRACK_UDP);
          if (v === 'none') continue;
          say(`N=${n}: loading ${v}`);
          const l = v === 'output-only' ? outputOnly : withForward;
          const target: LinuxTarget = v === 'iptables' ? 'iptables' : 'nft';
          const { compileMs, loadMs } = await compileAndLoad(x, p.host.ns, l.ir, target, l.frontMs);
          meta.set(v, { compileMs, loadMs });
        }
        const samples = new Map(variants.map((v) => [v, Object.fromEntries(METRICS.map((m) => [m, [] as Sample[]])) as Record<Metric, Sample[]>]));
        // Warm-up, not recorded: first packets pay for route caches, page faults, JIT, and the ping rule's first match.
        for (const v of variants) for (const m of METRICS) await measure(x, paths.get(v)!, dst, { ...o, durationMs: m === 'ping' ? 1000 : 300 }, m);
        // Metric by metric, every variant one after the other (in rotating order): the runs a ratio pairs are close in time.
        for (let round = 0; round < o.rounds; round++) {
          say(`N=${n}: round ${round + 1}/${o.rounds}`);
          const order = variants.map((_, i) => variants[(i + round) % variants.length]!);
          for (const m of METRICS) for (const v of order) samples.get(v)![m].push(await measure(x, paths.get(v)!, dst, o, m));
        }
        const base = (b: FwdVariant, m: Metric) => samples.get(b)![m];
        for (const v of variants) {
          const s = samples.get(v)!;
          const per = (m: Metric, b: FwdVariant): Comparison => {
            const [xs, bs] = [s[m], base(b, m)];
            const half = m === 'ping' ? 2 : 1; // a round trip is two forwarded packets
            return {
              rate: roundRatios(xs.map((q) => q.rate), bs.map((q) => q.rate)),
              cpu: roundRatios(bs.map((q) => q.cpuUs), xs.map((q) => q.cpuUs)),
              addedUs: added(xs.map((q) => q.cpuUs), bs.map((q) => q.cpuUs), half),
            };
          };
          const metric = (m: Metric): MetricRow => ({
            rate: median(s[m].map((q) => q.rate)),
            cpuUs: median(s[m].map((q) => q.cpuUs)),
            lost: s[m].reduce((a, q) => a + q.lost, 0),
            vsNone: per(m, 'none'),
            vsOutputOnly: per(m, 'output-only'),
          });
          rows.push({ n, variant: v, ...meta.get(v), tcp: metric('tcp'), udp: metric('udp'), ping: metric('ping') });
        }
      } finally {
        for (const p of paths.values()) await p.close();
      }
    }
  } finally {
    await world.close();
  }
  return rows;
}

/** The issue's goals (issue 11, "Speed"): new flows within 10 % of no firewall at 100k destinations; established fast path ≤ 1 µs added. */
export const FWD_GOALS = { newFlowRatio: 0.9, establishedAddedUs: 1 };

export function forwardBenchMarkdown(rows: FwdBenchRow[], o: Partial<FwdBenchOptions> = {}): string {
  const opt = { ...DEFAULT_FWD_BENCH, ...o };
  const r2 = (s: Stat) => `${s.median.toFixed(2)} (${s.iqr[0].toFixed(2)}–${s.iqr[1].toFixed(2)})`;
  const sign = (v: number) => `${v >= 0 ? '+' : '−'}${Math.abs(v).toFixed(2)}`;
  const us = (s: Stat) => `${sign(s.median)} (${sign(s.iqr[0])} … ${sign(s.iqr[1])})`;
  const f0 = (v: number | undefined) => (v === undefined ? '-' : Math.round(v).toLocaleString('en-US'));
  const f1 = (v: number) => (v >= 100 ? f0(v) : v.toFixed(2));
  const nn = (r: FwdBenchRow) => `| ${r.n.toLocaleString('en-US')} | ${r.variant} |`;
  const table = (m: Metric, title: string, unit: string, addedUnit: string, withLoad: boolean) => [
    title,
    '',
    `| N destinations | firewall |${withLoad ? ' compile ms | load ms |' : ''} ${unit}/s | vs none (IQR) | vs output-only (IQR) | CPU µs per ${unit} | CPU-bound vs none (IQR) | CPU µs added per ${addedUnit} vs none (IQR) | vs output-only (IQR) | lost |`,
    `| ---: | --- |${withLoad ? ' ---: | ---: |' : ''} ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |`,
    ...rows.map((r) => {
      const q = r[m];
      return `${nn(r)}${withLoad ? ` ${f0(r.compileMs)} | ${f0(r.loadMs)} |` : ''} ${f0(q.rate)} | ${r2(q.vsNone.rate)} | ${r2(q.vsOutputOnly.rate)} | ${f1(q.cpuUs)} | ${r2(q.vsNone.cpu)} | ${us(q.vsNone.addedUs)} | ${us(q.vsOutputOnly.addedUs)} | ${q.lost} |`;
    }),
    '',
  ];
  const lines = [
    ...table('tcp', 'New flows: TCP connection setups (every SYN a new forwarded flow):', 'setup', 'setup', true),
    ...table('udp', 'Every packet through the whole forward chain: UDP datagrams, untracked:', 'datagram', 'datagram', false),
    ...table('ping', 'Established flow: ICMPv6 echo, `ping -f`, one in flight (a round trip = 2 forwarded packets):', 'round trip', 'forwarded packet', false),
    ...rows
      .filter((r) => r.variant !== 'none' && r.variant !== 'output-only')
      .map((r) => {
        const ok = (b: boolean) => (b ? 'met' : 'NOT met');
        const t = r.tcp.vsNone;
        const e = r.ping;
        return (
          `goal, N=${r.n.toLocaleString('en-US')} ${r.variant}: new flows ${t.rate.median.toFixed(2)} of none by rate, ${t.cpu.median.toFixed(2)} by CPU (≥ ${FWD_GOALS.newFlowRatio}: ${ok(t.rate.median >= FWD_GOALS.newFlowRatio)} / ${ok(t.cpu.median >= FWD_GOALS.newFlowRatio)}); ` +
          `established ${sign(e.vsNone.addedUs.median)} µs a packet vs none, ${sign(e.vsOutputOnly.addedUs.median)} vs output-only (≤ ${FWD_GOALS.establishedAddedUs}: ${ok(e.vsNone.addedUs.median <= FWD_GOALS.establishedAddedUs)} / ${ok(e.vsOutputOnly.addedUs.median <= FWD_GOALS.establishedAddedUs)})`
        );
      }),
    '',
    `forward rules a new flow of the load is checked against before its own: ${opt.rules + 1} (the deny${opt.rules ? ` and ${opt.rules} extra allows` : ''}); rates: median of ${opt.rounds} rounds of ${opt.durationMs} ms each (ping: whole seconds); "vs X": median over rounds of rate / X's rate in the same round; "CPU-bound vs none": none's CPU per unit / this one's, per round (the rate ratio if the sender's CPU were the limit); CPU: the sender's (client) process, which the veth path's softirq is charged to; TCP ${opt.tcpConcurrency} connections in flight, UDP ${opt.udpConcurrency} datagrams in flight; node ${process.version}`,
  ];
  return lines.join('\n') + '\n';
}
