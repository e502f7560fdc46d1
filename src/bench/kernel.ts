/**
 * The kernel benchmark (bench/kernel.mjs runs it from dist/): what a policy
 * with N destinations costs on the packet path, nft sets versus the
 * iptables backend's linear chain, against no firewall at all measured in
 * the same run, in the lab's namespaces.
 *
 * For each N: a policy (default reject) whose allow rule names N separate
 * IPv6 addresses in 2001:db8::/32 (a `{ file: }` set, so no two merge into
 * one interval) on tcp/443 and udp/53. The load goes to all N addresses
 * (C generator, `targets: 'all'`) or to the one that sorts last (the worst
 * case for a linear chain, one hot key for a set). One host namespace per
 * variant — none, conntrack, nft, iptables — measured in rotating order,
 * `rounds` times; reported: the median rate, and the median over rounds of
 * the rate divided by none's rate in the same round.
 *
 *  - TCP connection setups/s: every SYN is a new flow, so it crosses the
 *    whole ruleset (later packets are `established`).
 *  - UDP datagrams/s: a raw-table `notrack` for UDP in every namespace
 *    (baseline included) makes every datagram cross the whole ruleset, not
 *    only the first of a flow.
 *  - "conntrack" is a namespace with only `ct state established,related
 *    accept`: the share of the cost that any stateful firewall pays (the
 *    policies' `established` builtin turns connection tracking on).
 *  - compile: parse → IR → emit; load: `nft -f -` / `ip6tables-restore`
 *    (+ `iptables-restore`) into a fresh namespace.
 *
 * Load generators (`generator`):
 *  - c (bench/loadgen.c, compiled by bench/kernel.mjs): well under 1 µs of
 *    user time per setup or datagram (node: ~8.5 µs per datagram), so the
 *    kernel's per-packet cost shows. The world runs the same program as a
 *    TCP sink (accept and close, epoll: every setup is a full handshake) and
 *    drops UDP to port 53 at its raw prerouting hook, so neither side of the
 *    link is a node process. Destinations: all N, visited by a stride of
 *    ≈0.618·N (`targets: 'all'`), or only the last (`'last'`).
 *  - node (load-guest.ts, against the lab's node listener): the older
 *    measurement, kept for comparison; only the last destination.
 *
 * Times are printed, never asserted.
 */
import { performance } from 'node:perf_hooks';
import type { LinuxTarget } from '../backends/types.js';
import { hasErrors } from '../diag/diagnostic.js';
import type { Ir } from '../ir/types.js';
import { compilePolicy, loadPolicyText } from '../index.js';
import { load, readLive } from '../kernel/backend.js';
import { formatAddress } from '../policy/address.js';
import { staticResolver } from '../resolve/resolver.js';
import { describeFailure, realExecer, type Execer } from '../kernel/exec.js';
import { sysctl } from '../kernel/netns.js';
import { mustRun } from '../kernel/where.js';
import { LOAD_SOURCE } from './load-guest.js';
import { World, type Host } from '../lab/world.js';

export interface BenchOptions {
  sizes: number[];
  rounds: number;
  durationMs: number;
  tcpConcurrency: number;
  udpConcurrency: number;
  execer?: Execer;
  progress?: (line: string) => void;
  /** Edits of egress's nft ruleset measured beside it (EXPERIMENTS): what a change to the emitted form would buy. */
  experiments?: ExperimentName[];
  /** Measure egress's iptables output too (its 100k load alone takes seconds). */
  iptables?: boolean;
  /** Which load generator: the compiled C program (its path), or the node one. */
  generator: LoadGenerator;
  /** C generator: load to every destination (a stride through all N), or only to the one that sorts last. */
  targets: 'all' | 'last';
}

export type LoadGenerator = { kind: 'c'; path: string } | { kind: 'node' };

export const DEFAULT_BENCH: BenchOptions = { sizes: [1000, 10_000, 100_000], rounds: 9, durationMs: 1000, tcpConcurrency: 16, udpConcurrency: 64, generator: { kind: 'node' }, targets: 'all' };

/** The hand-written floor: loopback and established accepted, one rule with egress's own match over a plain hash set of `dests`, reject. */
function floorRuleset(dests: string[]): string {
  return [
    'table inet egressfloor {',
    `\tset a6 { type ipv6_addr; elements = { ${dests.join(', ')} } }`,
    '\tchain output {',
    '\t\ttype filter hook output priority filter; policy accept;',
    '\t\toif "lo" accept',
    '\t\tct state established,related accept',
    '\t\tip6 daddr @a6 meta l4proto . th dport { tcp . 443, udp . 53 } accept',
    '\t\treject',
    '\t}',
    '}',
    '',
  ].join('\n');
}

/**
 * Experiments: egress's nft ruleset for the bench policy, edited, loaded in a
 * host of its own and measured in the same rounds. Each says what one change
 * to the emitted form would buy (or what an earlier form cost); none is what
 * egress emits. `dests` are the N destinations.
 */
export const EXPERIMENTS = {
  /** `flags interval` put back on the single-address sets (`…_addr`): the kernel builds an interval tree for them, as egress emitted them before it put single addresses in hash sets. */
  'nft-interval': (t: string) => t.replace(/(\tset \S+_addr \{\n\t\ttype ipv[46]_addr\n)/g, '$1\t\tflags interval\n'),
  /** No counters at all: every `counter name "…"` statement taken out of the rules. */
  'nft-nocounters': (t: string) => t.replace(/ counter name "[^"]*"/g, ''),
  /** Anonymous counters (`counter`, one per rule, read from the rule) in place of the named ones (`counter name "…"`, an object each rule refers to). */
  'nft-anon-counters': (t: string) => t.replace(/ counter name "[^"]*"/g, ' counter'),
  /** The single-address sets with a declared `size`, which lets the kernel pick its fixed-size hash instead of the resizable one. */
  'nft-sized': (t: string, dests: string[]) => t.replace(/(\tset \S+_addr \{\n\t\ttype ipv[46]_addr\n)/g, `$1\t\tsize ${Math.max(dests.length, 1)}\n`),
  /** Hand-written: loopback and established accepted, then one rule with egress's own match (a plain hash set of the N addresses, the protocol and port pair), then reject: what a minimal ruleset with the same meaning costs, without egress's counters and other builtins. */
  floor: (_t: string, dests: string[]) => floorRuleset(dests),
  /** The floor without the port match (`ip6 daddr @a6 accept`): what the address lookup alone costs. */
  'floor-noports': (_t: string, dests: string[]) => floorRuleset(dests).replace(' meta l4proto . th dport { tcp . 443, udp . 53 } accept', ' accept'),
} satisfies Record<string, (text: string, dests: string[]) => string>;
export type ExperimentName = keyof typeof EXPERIMENTS;

/** none: no firewall; conntrack: only `ct state established,related accept` (what any stateful firewall costs). */
type Variant = 'none' | 'conntrack' | LinuxTarget | ExperimentName;

const CONNTRACK_ONLY = 'table inet egressbench_ct {\n  chain output { type filter hook output priority filter; policy accept; ct state established,related accept; }\n}\n';

export interface BenchRow {
  n: number;
  variant: Variant;
  compileMs?: number;
  loadMs?: number;
  tcpPerSec: number;
  udpPerSec: number;
  tcpRatio: number;
  udpRatio: number;
  /** Interquartile range of the per-round ratios: how much the machine's noise moved them. */
  tcpRatioIqr: [number, number];
  udpRatioIqr: [number, number];
  /** Median over rounds of 1/rate − 1/rate(none) in the same round, ns: what the firewall adds per setup or datagram. */
  tcpExtraNs: number;
  udpExtraNs: number;
  tcpExtraNsIqr: [number, number];
  udpExtraNsIqr: [number, number];
  /** The generator's CPU time per setup or datagram (median over rounds), ns; user: its user-space part (C generator). */
  tcpCpuNs: number;
  udpCpuNs: number;
  tcpUserNs?: number;
  udpUserNs?: number;
  /** The rates of each round, in round order (round r of every variant ran in the same rotation). */
  tcpSamples: number[];
  udpSamples: number[];
  errors: number;
}

/** Destination k of N: 2001:db8:H:L::1 with k = H·65536 + L — all documentation addresses, none adjacent. */
export function benchAddress(k: number): string {
  const base = 0x20010db8n << 96n;
  return formatAddress('ipv6', base | (BigInt(k) << 64n) | 1n);
}

function policyText(): string {
  return [
    'version: 1',
    'default: reject',
    'sets:',
    '  many: { file: dests.txt }',
    'allow:',
    '  - name: many',
    '    reason: benchmark destinations',
    '    to: [$many]',
    '    ports: [tcp/443, udp/53]',
    '',
  ].join('\n');
}

const NOTRACK_UDP = 'table inet egressbench {\n  chain raw { type filter hook output priority raw; policy accept; meta l4proto udp notrack; }\n}\n';

/** What the load generator (load-guest.ts) did in one run. */
export interface LoadResult {
  count: number;
  elapsedMs: number;
  errors: number;
  /** The generator's CPU time over the run (user + system), µs. */
  cpuUs: number;
  /** Its user-space part alone, µs (C generator only). */
  userUs?: number;
}

/** Run the load generator inside namespace `ns` for `durationMs`: TCP setups to `dst` port 443, or UDP datagrams to port 53. */
export async function runLoad(x: Execer, ns: string, dst: string, o: Pick<BenchOptions, 'durationMs' | 'tcpConcurrency' | 'udpConcurrency'>, mode: 'tcp' | 'udp'): Promise<LoadResult> {
  const input = JSON.stringify({ mode, dst, port: mode === 'tcp' ? 443 : 53, durationMs: o.durationMs, concurrency: mode === 'tcp' ? o.tcpConcurrency : o.udpConcurrency });
  const argv = [process.execPath, '--input-type=module', '-e', LOAD_SOURCE];
  const r = await x.run(argv[0]!, argv.slice(1), { netns: ns, input, timeoutMs: o.durationMs + 60_000 });
  if (r.code !== 0) throw new Error(describeFailure(['node', '<load>'], r));
  return JSON.parse(r.stdout) as LoadResult;
}

/** The C generator's arguments for one run: destinations by the bench's pattern (benchAddress), k = first … first+count−1. */
export function loadgenArgs(mode: 'tcp' | 'udp', n: number, o: Pick<BenchOptions, 'durationMs' | 'tcpConcurrency' | 'udpConcurrency' | 'targets'>): string[] {
  const [first, count] = o.targets === 'last' ? [n - 1, 1] : [0, n];
  const conc = mode === 'tcp' ? o.tcpConcurrency : o.udpConcurrency;
  return [mode, '--port', mode === 'tcp' ? '443' : '53', '--seconds', String(o.durationMs / 1000), '--concurrency', String(conc), '--first', String(first), '--count', String(count)];
}

/** Run the C generator (bench/loadgen.c) inside namespace `ns`. */
export async function runCLoad(x: Execer, path: string, ns: string, args: string[], durationMs: number): Promise<LoadResult> {
  const r = await x.run(path, args, { netns: ns, timeoutMs: durationMs + 60_000 });
  if (r.code !== 0) throw new Error(describeFailure(['loadgen', ...args], r));
  return JSON.parse(r.stdout) as LoadResult;
}

async function measure(x: Execer, host: Host, n: number, o: BenchOptions, mode: 'tcp' | 'udp'): Promise<{ rate: number; errors: number; cpuNs: number; userNs: number }> {
  const out =
    o.generator.kind === 'c'
      ? await runCLoad(x, o.generator.path, host.ns, loadgenArgs(mode, n, o), o.durationMs)
      : await runLoad(x, host.ns, benchAddress(n - 1), o, mode);
  const perOp = (us: number | undefined) => (out.count && us !== undefined ? (us * 1000) / out.count : NaN);
  return { rate: (out.count * 1000) / out.elapsedMs, errors: out.errors, cpuNs: perOp(out.cpuUs), userNs: perOp(out.userUs) };
}

/** What the world runs for the C generator: the C TCP sink on 443, and UDP to 53 dropped at raw prerouting (nothing to wake). */
const WORLD_UDP_DROP = 'table inet egressbench_sink {\n  chain pre { type filter hook prerouting priority raw; policy accept; udp dport 53 drop; }\n}\n';

async function startSinks(x: Execer, world: World, g: LoadGenerator): Promise<() => Promise<void>> {
  if (g.kind === 'node') {
    await world.listen({ tcp: [443], udp: [53] });
    return async () => {};
  }
  await mustRun({ execer: x, netns: world.ns }, ['nft', '-f', '-'], WORLD_UDP_DROP);
  const sink = x.start(g.path, ['sink', '--port', '443'], { netns: world.ns });
  try {
    const first = await Promise.race([sink.nextLine(), new Promise<string>((_, reject) => setTimeout(() => reject(new Error('loadgen sink did not start')), 10_000).unref())]);
    if (first !== 'ready') throw new Error(`loadgen sink said ${JSON.stringify(first)}`);
  } catch (e) {
    await sink.stop();
    throw e;
  }
  return async () => void (await sink.stop());
}

/** The q-quantile (0..1) by linear interpolation. */
export const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  const at = (s.length - 1) * q;
  const lo = Math.floor(at);
  return s[lo]! + (s[Math.min(lo + 1, s.length - 1)]! - s[lo]!) * (at - lo);
};
export const median = (xs: number[]) => quantile(xs, 0.5);

/**
 * Compile `ir` for `target` and load it into the fresh namespace `ns`.
 * compileMs includes `frontMs` (parse → IR, done once per policy); loadMs
 * is the load alone (the live read before it is not timed). `edit` may
 * rewrite the ruleset text first (nft-interval).
 */
export async function compileAndLoad(x: Execer, ns: string, ir: Ir, target: LinuxTarget, frontMs: number, edit?: (text: string) => string): Promise<{ compileMs: number; loadMs: number; bytes: number }> {
  const t1 = performance.now();
  const art = compilePolicy(ir, target);
  const compileMs = frontMs + (performance.now() - t1);
  if (!art.value) throw new Error(`backend "${target}" refused the bench policy`);
  const loaded = edit ? { ...art.value, text: edit(art.value.text) } : art.value;
  const w = { execer: x, netns: ns };
  const cur = await readLive(w, target); // before the clock: only the load itself is timed
  const t2 = performance.now();
  const failure = await load(w, target, loaded, cur);
  if (failure) throw new Error(`${target}: ${failure.message}`);
  return { compileMs, loadMs: performance.now() - t2, bytes: loaded.text.length };
}

/** Parse → check → resolve → lower a bench policy whose `{ file: }` sets live under /bench (`files`), timed. */
export async function loadBenchPolicy(text: string, files: Record<string, string>): Promise<{ ir: Ir; frontMs: number }> {
  const t0 = performance.now();
  const l = await loadPolicyText('bench.yaml', text, { resolver: staticResolver({}, files), baseDir: '/bench' });
  if (hasErrors(l.diagnostics) || !l.ir) throw new Error(`bench policy did not load: ${l.diagnostics.map((d) => d.message).join('; ')}`);
  return { ir: l.ir, frontMs: performance.now() - t0 };
}

/** Per-round ratios against the baseline's samples of the same rounds: their median and interquartile range. */
export function roundRatios(xs: number[], base: number[]): { median: number; iqr: [number, number] } {
  const r = xs.map((v, i) => v / base[i]!);
  return { median: median(r), iqr: [quantile(r, 0.25), quantile(r, 0.75)] };
}

/** Per-round added time per operation, 1/rate − 1/base in ns (rates per second): its median and interquartile range. */
export function roundExtraNs(xs: number[], base: number[]): { median: number; iqr: [number, number] } {
  const d = xs.map((v, i) => 1e9 / v - 1e9 / base[i]!);
  return { median: median(d), iqr: [quantile(d, 0.25), quantile(d, 0.75)] };
}

export async function runKernelBench(opts: Partial<BenchOptions> = {}): Promise<BenchRow[]> {
  const o = { ...DEFAULT_BENCH, ...opts };
  const x = o.execer ?? realExecer();
  const say = o.progress ?? (() => {});
  const rows: BenchRow[] = [];
  const VARIANTS: Variant[] = ['none', 'conntrack', 'nft', ...(o.experiments ?? []), ...(o.iptables === false ? [] : (['iptables'] as const))];
  const world = await World.create(x);
  let stopSinks = async () => {};
  try {
    stopSinks = await startSinks(x, world, o.generator);
    for (const n of o.sizes) {
      const dests = Array.from({ length: n }, (_, k) => benchAddress(k));
      const files = { [`/bench/dests.txt`]: dests.join('\n') + '\n' };
      const { ir, frontMs } = await loadBenchPolicy(policyText(), files);
      const hosts = new Map<Variant, Host>();
      const meta = new Map<Variant, { compileMs?: number; loadMs?: number }>();
      try {
        for (const v of VARIANTS) {
          const host = await world.addHost();
          hosts.set(v, host);
          await sysctl(x, host.ns, { 'net.ipv4.ip_local_port_range': '1024 65535' });
          await mustRun({ execer: x, netns: host.ns }, ['nft', '-f', '-'], NOTRACK_UDP);
          if (v === 'none') continue;
          if (v === 'conntrack') {
            await mustRun({ execer: x, netns: host.ns }, ['nft', '-f', '-'], CONNTRACK_ONLY);
            continue;
          }
          const target: LinuxTarget = v === 'iptables' ? 'iptables' : 'nft';
          say(`N=${n}: loading ${v}`);
          const experiment = v in EXPERIMENTS ? EXPERIMENTS[v as ExperimentName] : undefined;
          const edit = experiment ? (t: string) => experiment(t, dests) : undefined;
          const { compileMs, loadMs } = await compileAndLoad(x, host.ns, ir, target, frontMs, edit);
          meta.set(v, { compileMs, loadMs });
        }
        const samples = new Map<Variant, { tcp: number[]; udp: number[]; tcpCpu: number[]; udpCpu: number[]; tcpUser: number[]; udpUser: number[]; errors: number }>(
          VARIANTS.map((v) => [v, { tcp: [], udp: [], tcpCpu: [], udpCpu: [], tcpUser: [], udpUser: [], errors: 0 }]),
        );
        // Warm-up, not recorded: first connections pay for route and neighbour caches, page faults, JIT.
        for (const v of VARIANTS) await measure(x, hosts.get(v)!, n, { ...o, durationMs: 300 }, 'tcp');
        for (let round = 0; round < o.rounds; round++) {
          const order = VARIANTS.map((_, i) => VARIANTS[(i + round) % VARIANTS.length]!);
          for (const v of order) {
            say(`N=${n}: round ${round + 1}/${o.rounds}: ${v}`);
            const s = samples.get(v)!;
            const t = await measure(x, hosts.get(v)!, n, o, 'tcp');
            const u = await measure(x, hosts.get(v)!, n, o, 'udp');
            s.tcp.push(t.rate);
            s.udp.push(u.rate);
            s.tcpCpu.push(t.cpuNs);
            s.udpCpu.push(u.cpuNs);
            s.tcpUser.push(t.userNs);
            s.udpUser.push(u.userNs);
            s.errors += t.errors + u.errors;
          }
        }
        // Ratios are taken round by round (each against the baseline measured in the same round), then
        // the median: load from elsewhere on the machine drifts slowly and cancels out within a round.
        const base = samples.get('none')!;
        for (const v of VARIANTS) {
          const s = samples.get(v)!;
          const rt = roundRatios(s.tcp, base.tcp);
          const ru = roundRatios(s.udp, base.udp);
          const et = roundExtraNs(s.tcp, base.tcp);
          const eu = roundExtraNs(s.udp, base.udp);
          rows.push({
            n,
            variant: v,
            ...meta.get(v),
            tcpPerSec: median(s.tcp),
            udpPerSec: median(s.udp),
            tcpRatio: rt.median,
            udpRatio: ru.median,
            tcpRatioIqr: rt.iqr,
            udpRatioIqr: ru.iqr,
            tcpExtraNs: et.median,
            udpExtraNs: eu.median,
            tcpExtraNsIqr: et.iqr,
            udpExtraNsIqr: eu.iqr,
            tcpCpuNs: median(s.tcpCpu),
            udpCpuNs: median(s.udpCpu),
            ...(o.generator.kind === 'c' ? { tcpUserNs: median(s.tcpUser), udpUserNs: median(s.udpUser) } : {}),
            tcpSamples: s.tcp,
            udpSamples: s.udp,
            errors: s.errors,
          });
        }
      } finally {
        for (const h of hosts.values()) await h.close();
      }
    }
  } finally {
    await stopSinks();
    await world.close();
  }
  return rows;
}

/** Each experiment against egress's ruleset, per round (1/rate(nft) − 1/rate(experiment), the same round), at each N: what it would save (negative: cost). */
function experimentSavings(rows: BenchRow[]): string[] {
  const ns = (d: { median: number; iqr: [number, number] }) => `${Math.round(d.median)} ns (IQR ${Math.round(d.iqr[0])}…${Math.round(d.iqr[1])})`;
  return rows.flatMap((r) => {
    const nft = rows.find((q) => q.n === r.n && q.variant === 'nft');
    if (!nft || !(r.variant in EXPERIMENTS)) return [];
    return [`N=${r.n.toLocaleString('en-US')}: ${r.variant} against egress's ruleset saves ${ns(roundExtraNs(nft.udpSamples, r.udpSamples))} per datagram, ${ns(roundExtraNs(nft.tcpSamples, r.tcpSamples))} per setup`];
  });
}

export function benchMarkdown(rows: BenchRow[], o: Partial<BenchOptions> = {}): string {
  const opt = { ...DEFAULT_BENCH, ...o };
  const iqr = (m: number, [a, b]: [number, number]) => `${m.toFixed(2)} (${a.toFixed(2)}–${b.toFixed(2)})`;
  const f0 = (v: number | undefined) => (v === undefined ? '-' : Math.round(v).toLocaleString('en-US'));
  const ns = (m: number, [a, b]: [number, number]) => `${Math.round(m)} (${Math.round(a)}…${Math.round(b)})`;
  const gen =
    opt.generator.kind === 'c'
      ? `C generator (bench/loadgen.c), destinations: ${opt.targets === 'all' ? 'all N, spread (stride ≈0.618·N)' : 'the last one'}; TCP ${opt.tcpConcurrency} connects in flight, UDP sendmmsg batches of ${opt.udpConcurrency}`
      : `node generator, the last destination; TCP ${opt.tcpConcurrency} connections in flight, UDP ${opt.udpConcurrency} datagrams in flight; node ${process.version}`;
  const lines = [
    `| N destinations | firewall | compile ms | load ms | TCP setups/s | vs none (IQR) | +ns/setup (IQR) | UDP datagrams/s | vs none (IQR) | +ns/datagram (IQR) | errors |`,
    `| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |`,
    ...rows.map((r) =>
      `| ${r.n.toLocaleString('en-US')} | ${r.variant} | ${f0(r.compileMs)} | ${f0(r.loadMs)} | ${f0(r.tcpPerSec)} | ${iqr(r.tcpRatio, r.tcpRatioIqr)} | ${ns(r.tcpExtraNs, r.tcpExtraNsIqr)} | ${f0(r.udpPerSec)} | ${iqr(r.udpRatio, r.udpRatioIqr)} | ${ns(r.udpExtraNs, r.udpExtraNsIqr)} | ${r.errors} |`,
    ),
    '',
    `rates: median of ${opt.rounds} rounds of ${opt.durationMs} ms each; "vs none": median over rounds of rate / none's rate in the same round; "+ns": median over rounds of 1/rate − 1/rate(none) in the same round; ${gen}`,
    `generator CPU per operation, user + system${opt.generator.kind === 'c' ? ' (user alone)' : ''}, median, firewall none: ${rows
      .filter((r) => r.variant === 'none')
      .map((r) => `N=${r.n}: ${f0(r.tcpCpuNs)}${r.tcpUserNs === undefined ? '' : ` (${f0(r.tcpUserNs)})`} ns/setup, ${f0(r.udpCpuNs)}${r.udpUserNs === undefined ? '' : ` (${f0(r.udpUserNs)})`} ns/datagram`)
      .join('; ')}`,
    ...experimentSavings(rows),
  ];
  return lines.join('\n') + '\n';
}
