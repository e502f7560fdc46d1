/**
 * `egress lab`: rehearse a policy against the real kernel in throwaway
 * network namespaces. Load the policy with hostnames pinned to documentation
 * addresses and missing users mapped to spare uids, plan probes (plan.ts),
 * build a world that answers on every probed port, and for each backend:
 * compile, load into a fresh host namespace, probe as each user, and hold
 * every outcome against explain. Never touches the root namespace's firewall.
 *
 * Under `dns.proxy` the world also serves DNS (world-dns.ts, the zone
 * names.ts plans) and each host namespace runs the real forwarder (the
 * process form, src/dns/main.ts, root with the forwarder's group, its nft
 * writer in that namespace) with the configuration apply would give it, its
 * upstream the world's server; name rules are then probed by resolving and
 * connecting, as a program would.
 *
 * Under `forward:` each host namespace also gets "container" namespaces
 * behind it (forward.ts plans them, world.ts builds them): one per forward
 * source and one on an interface no source covers. Their probes cross the
 * host's forward hook and are held against `explain --from ADDRESS --in
 * INTERFACE`.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Backend } from '../backends/types.js';
import { hasErrors, type Diagnostic } from '../diag/diagnostic.js';
import { compilePolicy, loadPolicyText, type Loaded, type LoadOptions } from '../index.js';
import type { Ir } from '../ir/types.js';
import { formatAddress, intervalsContain, parseAddress, type Family } from '../policy/address.js';
import { readSetFile, systemResolver, type Accounts, type HostAddresses, type Resolver } from '../resolve/resolver.js';
import type { LinuxTarget } from '../backends/types.js';
import { loadFresh } from '../kernel/backend.js';
import { writeFileAtomic } from '../kernel/atomic.js';
import type { Execer, Started } from '../kernel/exec.js';
import { forwarderUpstream } from '../kernel/forwarder.js';
import { nftForwarderConfig } from '../backends/nft/emit.js';
import { DNS_FORWARDER_GROUP, RESOLV_CONF } from '../resolve/dns.js';
import { kernelDiagnostics } from '../kernel/nft.js';
import { oracleFor, probeAndCompare, type Comparison } from './compare.js';
import { LAB_UPSTREAM, planNames, poolKey, PROBE_QUERY_NAME, type NamePlan } from './names.js';
import { planProbes, type NotProbed, type PlannedProbe } from './probes.js';
import { planForward, placeContainers, type LabContainer } from './forward.js';
import { DEFAULT_PROBE_TIMEOUT_MS } from './probe.js';
import { documentationIntervals, inDocumentation, withTimeout, World, type Container, type Host, type NamePin } from './world.js';

/** A user or group the policy names, and the id the lab probes it as. */
export interface LabIdentity {
  kind: 'user' | 'group';
  name: string;
  id: number;
  /** Not on this machine: mapped to a spare id for the rehearsal. */
  spare: boolean;
}

/** A policy hostname and the documentation addresses it is pinned to for the rehearsal. */
export type HostPin = NamePin;

export interface LabTargetResult {
  target: LinuxTarget;
  /** Set when the backend refused the policy or the kernel refused the ruleset. */
  error?: string;
  diagnostics?: Diagnostic[];
  comparisons: Comparison[];
}

export interface LabReport {
  /** The host's probes, then the name probes, then the forwarded ones (`probe.from` set), grouped by container. */
  planned: PlannedProbe[];
  notProbed: NotProbed[];
  identities: LabIdentity[];
  hosts: HostPin[];
  targets: LabTargetResult[];
  accounts: Accounts;
  /** Under `forward:`: the containers built behind each host namespace (the same for every target). */
  containers: LabContainer[];
}

export interface LabOptions extends Pick<LoadOptions, 'now' | 'baseDir'> {
  execer: Execer;
  /** A backend to use instead of the registry's (tests: a broken emitter must be caught). */
  backends?: Partial<Record<LinuxTarget, Backend>>;
  targets: LinuxTarget[];
  progress?: (line: string) => void;
  timeoutMs?: number;
  /** Accounts of this machine (default: /etc/passwd and /etc/group). */
  accounts?: Accounts;
  /** The hostname pins from loadForLab: written to each host namespace's hosts file, and resolved there before a probe to a pinned address. */
  hosts?: HostPin[];
  /**
   * Under `dns.proxy`: how to run the DNS forwarder's process form
   * (src/dns/main.ts); the spec file is appended. Default: the compiled
   * dns/main.js (next to this module, else in dist/).
   */
  forwarderCommand?: string[];
}

/**
 * How long the lab's forwarder may hold an answer for the kernel's commit,
 * and wait for the world's server: far above what apply gives it
 * (HOLD_MS), so a loaded machine shows up as slowness, never as SERVFAIL
 * and a disagreement.
 */
export const LAB_HOLD_MS = 20_000;
const LAB_UPSTREAM_TIMEOUT_MS = 10_000;
const FORWARDER_READY_MS = 60_000;

export class LabError extends Error {}

/**
 * The compiled forwarder process, found from this module: the bundle's
 * dns-forwarder.js beside it (dist/bundle/, /usr/lib/egress; scripts/bundle.mjs),
 * else dist/dns/main.js next to it when this is dist/, else in the package's dist/.
 */
export function defaultForwarderCommand(): string[] {
  for (const rel of ['./dns-forwarder.js', '../dns/main.js', '../../dist/dns/main.js']) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return [process.execPath, p];
  }
  throw new LabError('cannot find the DNS forwarder program (dist/dns/main.js); build it first: npm run build');
}

/** First uid/gid tried for names missing on this machine; used ones are skipped. */
export const SPARE_ID_BASE = 64200;

/**
 * Load a policy for the lab: hostnames resolve to documentation addresses no
 * literal in the policy uses (one IPv4, one IPv6 each), and user/group names
 * missing here get spare ids. Returns the load as explain would see it in
 * the lab, plus what was pinned and mapped.
 */
export async function loadForLab(name: string, text: string, opts: Pick<LabOptions, 'now' | 'baseDir' | 'accounts'> = {}): Promise<{ loaded: Loaded; hosts: HostPin[]; identities: LabIdentity[]; accounts: Accounts }> {
  const base: LoadOptions = { ...(opts.now ? { now: opts.now } : {}), ...(opts.baseDir ? { baseDir: opts.baseDir } : {}) };
  const system = systemResolver();
  const machine = opts.accounts ?? (await system.accounts());
  const first = await loadPolicyText(name, text, { ...base, offline: true, resolver: { ...system, accounts: async () => machine } });
  if (!first.policy || !first.ir) return { loaded: first, hosts: [], identities: [], accounts: machine };

  const identities: LabIdentity[] = [];
  const users = new Map(machine.users);
  const groups = new Map(machine.groups);
  const primaryGroup = new Map(machine.primaryGroup);
  const usedIds = new Set([...users.values(), ...groups.values()]);
  let next = SPARE_ID_BASE;
  const spareId = () => {
    while (usedIds.has(next)) next++;
    usedIds.add(next);
    return next++;
  };
  const named = collectOwnerNames(first);
  for (const n of named.users) {
    const id = users.get(n);
    if (id !== undefined) identities.push({ kind: 'user', name: n, id, spare: false });
    else {
      const uid = spareId();
      users.set(n, uid);
      primaryGroup.set(uid, uid);
      identities.push({ kind: 'user', name: n, id: uid, spare: true });
    }
  }
  for (const n of named.groups) {
    const id = groups.get(n);
    if (id !== undefined) identities.push({ kind: 'group', name: n, id, spare: false });
    else {
      const gid = spareId();
      groups.set(n, gid);
      identities.push({ kind: 'group', name: n, id: gid, spare: true });
    }
  }
  // The forwarder's group: a spare gid when this machine lacks it, so the rehearsal never adds one here.
  if (first.ir.dns) {
    const gid = groups.get(DNS_FORWARDER_GROUP);
    if (gid !== undefined) identities.push({ kind: 'group', name: DNS_FORWARDER_GROUP, id: gid, spare: false });
    else {
      const spare = spareId();
      groups.set(DNS_FORWARDER_GROUP, spare);
      identities.push({ kind: 'group', name: DNS_FORWARDER_GROUP, id: spare, spare: true });
    }
  }
  const accounts: Accounts = { users, groups, primaryGroup };

  const pool = pinPool(first.ir);
  const hosts: HostPin[] = [];
  const resolver: Resolver = {
    async lookupHost(host): Promise<HostAddresses> {
      let pin = hosts.find((h) => h.name === host);
      if (!pin) {
        pin = { name: host, ipv4: [pool.next('ipv4')], ipv6: [pool.next('ipv6')] };
        hosts.push(pin);
      }
      return { ipv4: [...pin.ipv4], ipv6: [...pin.ipv6] };
    },
    readFile: readSetFile,
    accounts: async () => accounts,
  };
  const loaded = await loadPolicyText(name, text, { ...base, resolver });
  return { loaded, hosts, identities, accounts };
}

function collectOwnerNames(l: Loaded): { users: string[]; groups: string[] } {
  const users = new Set<string>();
  const groups = new Set<string>();
  for (const r of [...l.policy!.allow, ...l.policy!.deny])
    for (const s of [r, ...r.except]) {
      for (const u of s.users ?? []) if (u.name !== undefined && /^[^0-9]/.test(u.text)) users.add(u.name);
      for (const g of s.groups ?? []) if (g.name !== undefined && /^[^0-9]/.test(g.text)) groups.add(g.name);
    }
  return { users: [...users].sort(), groups: [...groups].sort() };
}

const PIN_STEP = 16n;

/** Documentation addresses for pinned hostnames, avoiding every literal the policy names. */
function pinPool(ir: Ir): { next(f: Family): string } {
  const used = new Set<string>();
  const taken = (fam: Family, v: bigint) => ir.rules.some((r) => r.family === fam && [r, ...r.except].some((m) => m.dst && intervalsContain(m.dst, v)));
  return {
    next(fam) {
      // 203.0.113.100, .116, …, then the other prefixes; 2001:db8:ffff::100, ::110, …
      const starts = fam === 'ipv4' ? documentationIntervals(fam).reverse() : documentationIntervals(fam);
      for (const d of starts) {
        // Spaced out, so each name's neighbours are probed as its own and not merged with the next name.
        const from = fam === 'ipv4' ? d.lo + 100n : d.lo + (0xffffn << 80n) + 0x100n;
        for (let v = from; v <= d.hi; v += PIN_STEP) {
          const s = formatAddress(fam, v);
          if (!used.has(s) && !taken(fam, v)) {
            used.add(s);
            return s;
          }
        }
      }
      throw new Error(`no free documentation address left for a pinned hostname (${fam})`);
    },
  };
}

/** Run the rehearsal. Throws only for harness failures (namespaces, listener); backend and kernel refusals are per target. */
export async function runLab(loaded: Loaded, accounts: Accounts, identities: LabIdentity[], opts: LabOptions): Promise<Omit<LabReport, 'hosts' | 'identities'>> {
  const ir = loaded.ir!;
  const say = opts.progress ?? (() => {});
  // The forwarder's own identity is the guard's business (names.ts probes it), not a policy owner's.
  const owners = identities.filter((i) => !(i.kind === 'group' && i.name === DNS_FORWARDER_GROUP));
  const named = owners.map((i) => (i.kind === 'user' ? { uid: i.id, gid: accounts.primaryGroup.get(i.id) ?? i.id } : { uid: 0, gid: i.id }));
  const plan = planProbes(ir, accounts, named);
  const pinned = new Map((opts.hosts ?? []).flatMap((h) => [...h.ipv4, ...h.ipv6].map((a) => [a, h.name] as const)));
  const forward = ir.forward ? planForward(ir) : undefined;
  for (const p of [...plan.probes, ...(forward?.probes.map((f) => f.planned) ?? [])]) {
    const host = pinned.get(p.probe.dst);
    if (host !== undefined) p.probe = { ...p.probe, host };
  }
  const dsts = [...plan.probes, ...(forward?.probes.map((p) => p.planned) ?? [])].map((p) => p.probe.dst);
  const names = ir.dns ? planNames(ir, accounts, [...dsts, ...pinned.keys()]) : undefined;
  // Containers' addresses last: away from every address anything is probed at or answered with.
  const placed = forward ? placeContainers(forward, ir, [...dsts, ...pinned.keys(), ...(names ? nameAddresses(names) : [])]) : undefined;
  const planned = [...plan.probes, ...(names?.probes ?? []), ...(placed?.probes ?? [])];
  const hostCount = planned.length - (placed?.probes.length ?? 0);
  const report: Omit<LabReport, 'hosts' | 'identities'> = {
    planned,
    notProbed: [...plan.notProbed, ...(names?.notProbed ?? []), ...(placed?.notProbed ?? [])],
    targets: [],
    accounts,
    containers: placed?.containers ?? [],
  };
  // Under dns.proxy every program's port 53 goes to the forwarder, and the world's DNS server has port 53.
  const ports = (proto: 'tcp' | 'udp') => planned.filter((p) => p.probe.proto === proto).map((p) => p.probe.port!).filter((port) => !names || port !== 53);
  say(`creating the world namespace (answers on ${[...documentationIntervals('ipv4'), ...documentationIntervals('ipv6')].length} documentation prefixes)`);
  const world = await World.create(opts.execer);
  try {
    await world.listen({ tcp: ports('tcp'), udp: ports('udp') });
    if (names) {
      say(`the world serves DNS on ${names.upstream.map((u) => u.address).join(', ')} for ${Object.keys(names.zone.names).length} names`);
      await world.serveDns(names.zone);
    }
    const oracle = oracleFor(ir, accounts);
    report.targets = await Promise.all(
      opts.targets.map(async (target): Promise<LabTargetResult> => {
        const override = opts.backends?.[target];
        const art = override ? override.emit(ir) : compilePolicy(ir, target);
        if (hasErrors(art.diagnostics) || !art.value) return { target, error: `backend "${target}" cannot express this policy`, diagnostics: art.diagnostics, comparisons: [] };
        const host = await world.addHost(opts.hosts ?? [], names ? resolvers(names.upstream) : []);
        let forwarder: { stop(): Promise<void> } | undefined;
        try {
          say(`${target}: loading the ruleset into ${host.ns}`);
          const failure = await loadFresh({ execer: opts.execer, netns: host.ns }, target, art.value);
          if (failure) return { target, error: failure.message, diagnostics: kernelDiagnostics(failure), comparisons: [] };
          if (names) {
            say(`${target}: starting the DNS forwarder in ${host.ns}`);
            const started = await startLabForwarder(opts, host.ns, ir, accounts);
            if ('error' in started) return { target, error: started.error, comparisons: [] };
            forwarder = started;
          }
          const hostPlanned = planned.slice(0, hostCount);
          const owners = new Set(hostPlanned.map((p) => `${p.probe.uid}:${p.probe.gid}`));
          say(`${target}: probing ${hostPlanned.length} flows as ${owners.size} uid/gid pair${owners.size === 1 ? '' : 's'}`);
          const comparisons = await probeAndCompare(opts.execer, host.ns, oracle, hostPlanned.map((p) => p.probe), {
            timeoutMs: opts.timeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS,
            ...(names ? { pool: (p) => names.pools.get(poolKey(p.name!, p.dst.includes(':') ? 'ipv6' : 'ipv4')), dnsQueryName: PROBE_QUERY_NAME } : {}),
          });
          if (placed?.probes.length) {
            say(`${target}: ${placed.containers.length} container namespaces behind ${host.ns}; probing ${placed.probes.length} forwarded flows`);
            comparisons.push(...(await probeForwarded(opts, world, host, ir, accounts, placed)));
          }
          say(`${target}: done, ${comparisons.filter((c) => !c.agree).length} disagreement(s) with explain`);
          return { target, comparisons };
        } finally {
          await forwarder?.stop();
          await host.close();
        }
      }),
    );
  } finally {
    await world.close();
  }
  return report;
}

/**
 * Build the containers behind `host`, and probe from each (all at once)
 * while the world routes their addresses back; each outcome held against
 * explain for the flow from the container's address on its interface,
 * leaving through the host's uplink. Comparisons in the order of
 * `placed.probes`. The containers are removed before this returns.
 */
async function probeForwarded(opts: LabOptions, world: World, host: Host, ir: Ir, accounts: Accounts, placed: { containers: LabContainer[]; probes: PlannedProbe[] }): Promise<Comparison[]> {
  const oracle = oracleFor(ir, accounts, { via: host.uplink });
  const built: Container[] = [];
  try {
    for (const c of placed.containers) built.push(await world.addContainer(host, c, opts.hosts ?? []));
    const out: Comparison[] = new Array(placed.probes.length);
    const addresses = placed.containers.flatMap((c) => Object.values(c.addresses));
    await world.withReturnRoutes(host, addresses, () =>
      Promise.all(
        placed.containers.map(async (c, i) => {
          const idx = placed.probes.flatMap((p, k) => (p.probe.from?.in === c.hostIf ? [k] : []));
          const cs = await probeAndCompare(opts.execer, built[i]!.ns, oracle, idx.map((k) => placed.probes[k]!.probe), { timeoutMs: opts.timeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS });
          idx.forEach((k, j) => (out[k] = cs[j]!));
        }),
      ),
    );
    return out;
  } finally {
    for (const b of built) await b.close();
  }
}

/** Every address the world's DNS server may answer or listens on: no container may have one. */
function nameAddresses(names: NamePlan): string[] {
  return [...[...names.pools.values()].flat(), ...names.zone.other.a, ...names.zone.other.aaaa, ...names.upstream.map((u) => u.address)];
}

/**
 * Start the forwarder in host namespace `ns` as apply would (kernel/forwarder.ts):
 * the config nftForwarderConfig gives for this IR, upstream chosen as apply
 * chooses it (dns.upstream, else the namespace's resolv.conf, which names the
 * world's server), root with the forwarder's group. Resolves once it says
 * `ready` (listening, nft writer up); an error when it does not.
 */
async function startLabForwarder(opts: LabOptions, ns: string, ir: Ir, accounts: Accounts): Promise<{ stop(): Promise<void> } | { error: string }> {
  const gid = accounts.groups.get(DNS_FORWARDER_GROUP);
  if (gid === undefined) return { error: `no gid for the group ${DNS_FORWARDER_GROUP} the forwarder runs as` };
  const resolvConf = `/etc/netns/${ns}/resolv.conf`;
  const upstream = forwarderUpstream(ir.dns!, (path) => (path === RESOLV_CONF ? readText(resolvConf) : ''));
  // A dns.upstream outside the documentation prefixes is never asked: the world's server stands in (names.ts notes it).
  const usable = upstream.filter((u) => docAddress(u.address));
  const config = nftForwarderConfig(ir, usable.length ? usable : LAB_UPSTREAM.map((u) => ({ ...u })), LAB_HOLD_MS)!;
  const dir = mkdtempSync(join(tmpdir(), 'egress-lab-dns-'));
  const spec = join(dir, 'forwarder.json');
  writeFileAtomic(spec, JSON.stringify({ config, control: true, upstreamTimeoutMs: LAB_UPSTREAM_TIMEOUT_MS }) + '\n', 0o600);
  const cmd = opts.forwarderCommand ?? defaultForwarderCommand();
  let s: Started | undefined;
  const stop = async () => {
    await s?.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    s = opts.execer.start(cmd[0]!, [...cmd.slice(1), spec], { netns: ns, gid });
    const line = await withTimeout(s.nextLine(), FORWARDER_READY_MS, 'the DNS forwarder did not say ready').catch((e: Error) => e.message);
    if (line?.startsWith('ready ')) return { stop };
    const r = await s.stop();
    await stop();
    return { error: `the DNS forwarder did not start: ${line}; ${r.stderr.trim().split('\n').slice(-3).join('; ')}` };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** What a host's resolv.conf names under dns.proxy: the world's servers on port 53 (any address would do: port 53 is redirected to the forwarder). */
function resolvers(upstream: readonly { address: string; port: number }[]): string[] {
  const on53 = upstream.filter((u) => u.port === 53).map((u) => u.address);
  return on53.length ? on53 : LAB_UPSTREAM.map((u) => u.address);
}

function docAddress(a: string): boolean {
  const p = parseAddress(a);
  return !!p && inDocumentation(p.family, p.value);
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
