/**
 * `egress lab`: rehearse a policy against the real kernel in throwaway
 * network namespaces. Load the policy with hostnames pinned to documentation
 * addresses and missing users mapped to spare uids, plan probes (plan.ts),
 * build a world that answers on every probed port, and for each backend:
 * compile, load into a fresh host namespace, probe as each user, and hold
 * every outcome against explain. Never touches the root namespace's firewall.
 */
import type { Backend } from '../backends/types.js';
import { hasErrors, type Diagnostic } from '../diag/diagnostic.js';
import { compilePolicy, loadPolicyText, type Loaded, type LoadOptions } from '../index.js';
import type { Ir } from '../ir/types.js';
import { formatAddress, intervalsContain, type Family } from '../policy/address.js';
import { readSetFile, systemResolver, type Accounts, type HostAddresses, type Resolver } from '../resolve/resolver.js';
import type { LinuxTarget } from '../backends/types.js';
import { loadFresh } from '../kernel/backend.js';
import type { Execer } from '../kernel/exec.js';
import { kernelDiagnostics } from '../kernel/nft.js';
import { probeAndCompare, type Comparison } from './compare.js';
import { planProbes, type NotProbed, type PlannedProbe } from './probes.js';
import { DEFAULT_PROBE_TIMEOUT_MS } from './probe.js';
import { indexedEvaluator } from '../sim/indexed.js';
import { documentationIntervals, World, type NamePin } from './world.js';

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
  planned: PlannedProbe[];
  notProbed: NotProbed[];
  identities: LabIdentity[];
  hosts: HostPin[];
  targets: LabTargetResult[];
  accounts: Accounts;
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
  const named = identities.map((i) => (i.kind === 'user' ? { uid: i.id, gid: accounts.primaryGroup.get(i.id) ?? i.id } : { uid: 0, gid: i.id }));
  const plan = planProbes(ir, accounts, named);
  const pinned = new Map((opts.hosts ?? []).flatMap((h) => [...h.ipv4, ...h.ipv6].map((a) => [a, h.name] as const)));
  for (const p of plan.probes) {
    const host = pinned.get(p.probe.dst);
    if (host !== undefined) p.probe = { ...p.probe, host };
  }
  const report: Omit<LabReport, 'hosts' | 'identities'> = { planned: plan.probes, notProbed: plan.notProbed, targets: [], accounts };
  const tcp = plan.probes.filter((p) => p.probe.proto === 'tcp').map((p) => p.probe.port!);
  const udp = plan.probes.filter((p) => p.probe.proto === 'udp').map((p) => p.probe.port!);
  say(`creating the world namespace (answers on ${[...documentationIntervals('ipv4'), ...documentationIntervals('ipv6')].length} documentation prefixes)`);
  const world = await World.create(opts.execer);
  try {
    await world.listen({ tcp, udp });
    const evaluate = indexedEvaluator(ir);
    report.targets = await Promise.all(
      opts.targets.map(async (target): Promise<LabTargetResult> => {
        const override = opts.backends?.[target];
        const art = override ? override.emit(ir) : compilePolicy(ir, target);
        if (hasErrors(art.diagnostics) || !art.value) return { target, error: `backend "${target}" cannot express this policy`, diagnostics: art.diagnostics, comparisons: [] };
        const host = await world.addHost(opts.hosts ?? []);
        try {
          say(`${target}: loading the ruleset into ${host.ns}`);
          const failure = await loadFresh({ execer: opts.execer, netns: host.ns }, target, art.value);
          if (failure) return { target, error: failure.message, diagnostics: kernelDiagnostics(failure), comparisons: [] };
          const owners = new Set(plan.probes.map((p) => `${p.probe.uid}:${p.probe.gid}`));
          say(`${target}: probing ${plan.probes.length} flows as ${owners.size} uid/gid pair${owners.size === 1 ? '' : 's'}`);
          const comparisons = await probeAndCompare(
            opts.execer,
            host.ns,
            evaluate,
            plan.probes.map((p) => p.probe),
            accounts,
            { timeoutMs: opts.timeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS },
          );
          say(`${target}: done, ${comparisons.filter((c) => !c.agree).length} disagreement(s) with explain`);
          return { target, comparisons };
        } finally {
          await host.close();
        }
      }),
    );
  } finally {
    await world.close();
  }
  return report;
}
