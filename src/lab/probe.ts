/**
 * Probes: real sockets from a host namespace, as given uids/gids, to the
 * world; and the bridge between what the kernel did and what `explain`
 * predicts for the same flow.
 */
import type { Accounts } from '../resolve/resolver.js';
import { formatAddress, parseAddress, type Family } from '../policy/address.js';
import type { Verdict } from '../policy/types.js';
import { icmpTypeNumber } from '../policy/protocols.js';
import type { Decision, Flow, Owner } from '../sim/flow.js';
import { describeFailure, type Execer } from '../kernel/exec.js';
import { PROBE_SOURCE } from './probe-script.js';
import { inDocumentation } from './world.js';

export type ProbeProto = 'tcp' | 'udp' | 'icmp';

/** One connection attempt: TCP connect, UDP datagram, or ICMP echo-request. */
export interface Probe {
  proto: ProbeProto;
  dst: string;
  /**
   * The policy hostname `dst` is pinned for. The prober first resolves it in
   * the namespace (its own hosts file) and refuses to go on unless `dst` is
   * among the answers: the rehearsal goes through the same name service.
   */
  host?: string;
  /**
   * A name that follows DNS (`dns.proxy`, names.ts): the prober asks for it
   * (A for an IPv4 `dst`, AAAA for IPv6) through the namespace's resolver,
   * and connects at once to every address answered. `dst` is then only where
   * the answer is expected from (the name's pool); the result says which
   * address the outcome is for.
   */
  name?: string;
  /** tcp/udp only. */
  port?: number;
  uid: number;
  gid: number;
  /**
   * A forwarded probe (`forward:`): sent from a container namespace behind
   * the host namespace, as root there (a forwarded packet has no owner on
   * the host). explain is asked as `explain --from SRC --in IN`.
   */
  from?: ProbeOrigin;
}

/** Where a forwarded probe starts: a container namespace behind the host (forward.ts). */
export interface ProbeOrigin {
  /** The forward source the container stands for; absent = the lab's unlisted container (on an interface no source covers). Only a label: explain is not told it. */
  source?: string;
  /** The container's address in the probe's family: the packet's source. */
  src: string;
  /** The container's interface in the host namespace: where its packets arrive. */
  in: string;
}

/** refused: a name probe's lookup was answered REFUSED (the forwarder does that for a deny rule's names). */
export type Outcome = 'accepted' | 'rejected' | 'dropped' | 'error' | 'refused';

export interface ProbeResult {
  probe: Probe;
  outcome: Outcome;
  /** What userspace saw: `connected`, `reply`, an errno, `timeout`, ping's error line. */
  detail: string;
  /** A name probe: every address the answer held (the outcome is the worst of the connects to them). */
  answered?: string[];
}

export interface ProbeOptions {
  /** How long silence takes to count as a drop (default 400 ms). */
  timeoutMs?: number;
  concurrency?: number;
  /**
   * Name probes: the addresses an answer for the probe may hold (its name's
   * pool). An answer with any other address is an error and is not
   * connected to: the lab never sends traffic outside its own addresses.
   */
  pool?: (p: Probe) => readonly string[] | undefined;
  /**
   * Under `dns.proxy`: udp probes to port 53 send a DNS query (for this name)
   * instead of the world listener's datagram, since the ruleset hands them to
   * the forwarder, which answers DNS only.
   */
  dnsQueryName?: string;
}

export const DEFAULT_PROBE_TIMEOUT_MS = 400;

export class ProbeError extends Error {}

/** The family of a probe's destination; throws for anything that is not an address. */
export function probeFamily(p: Probe): Family {
  const a = parseAddress(p.dst);
  if (!a) throw new ProbeError(`bad probe destination ${JSON.stringify(p.dst)}`);
  return a.family;
}

/**
 * Run probes from namespace `ns`: one child process per (uid, gid), all at
 * once, each trying its probes concurrently. Refuses any destination outside
 * the documentation prefixes: the lab never sends traffic anywhere else.
 */
export async function runProbes(x: Execer, ns: string, probes: readonly Probe[], opts: ProbeOptions = {}): Promise<ProbeResult[]> {
  for (const p of probes) {
    const a = parseAddress(p.dst);
    if (!a || !inDocumentation(a.family, a.value)) throw new ProbeError(`refusing to probe ${p.dst}: outside the documentation prefixes`);
    if (p.proto !== 'icmp' && (p.port === undefined || p.port < 1 || p.port > 65535)) throw new ProbeError(`probe to ${p.dst} needs a port in 1-65535`);
    if (p.name !== undefined) {
      const pool = opts.pool?.(p) ?? [];
      if (!pool.length) throw new ProbeError(`name probe for ${p.name} has no pool of addresses`);
      for (const q of pool) {
        const b = parseAddress(q);
        if (!b || b.family !== a.family || !inDocumentation(b.family, b.value)) throw new ProbeError(`refusing to probe ${q} for ${p.name}: outside the documentation prefixes`);
      }
    }
  }
  const groups = new Map<string, number[]>();
  probes.forEach((p, i) => {
    const k = `${p.uid}:${p.gid}`;
    groups.set(k, [...(groups.get(k) ?? []), i]);
  });
  const results: ProbeResult[] = new Array(probes.length);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS;
  await Promise.all(
    [...groups.values()].map(async (idx) => {
      const first = probes[idx[0]!]!;
      const input = JSON.stringify({
        timeoutMs,
        concurrency: opts.concurrency ?? 128,
        ...(opts.dnsQueryName !== undefined ? { dnsQueryName: opts.dnsQueryName } : {}),
        probes: idx.map((i) => {
          const p = probes[i]!;
          return { id: i, proto: p.proto, dst: p.dst, port: p.port, host: p.host, ...(p.name !== undefined ? { name: p.name, pool: opts.pool?.(p) } : {}) };
        }),
      });
      const asRoot = first.uid === 0 && first.gid === 0;
      const argv = [process.execPath, '--input-type=module', '-e', PROBE_SOURCE];
      const r = await x.run(argv[0]!, argv.slice(1), {
        netns: ns,
        input,
        timeoutMs: 60_000 + timeoutMs * idx.length,
        ...(asRoot ? {} : { uid: first.uid, gid: first.gid }),
      });
      if (r.code !== 0) throw new ProbeError(`prober as uid ${first.uid} gid ${first.gid} failed: ${describeFailure(['node', '<probe>'], r)}`);
      let out: { id: number; outcome: Outcome; detail: string; dst?: string; answered?: string[] }[];
      try {
        out = JSON.parse(r.stdout) as typeof out;
      } catch {
        throw new ProbeError(`prober as uid ${first.uid} printed no result: ${r.stdout.slice(0, 200)} ${r.stderr.slice(0, 200)}`);
      }
      for (const o of out) {
        const p = probes[o.id]!;
        results[o.id] = { probe: o.dst !== undefined && p.name !== undefined ? { ...p, dst: o.dst } : p, outcome: o.outcome, detail: o.detail, ...(o.answered ? { answered: o.answered } : {}) };
      }
    }),
  );
  return results;
}

export type KernelVerdict = Verdict | 'error' | 'refused';

export function kernelVerdict(o: Outcome): KernelVerdict {
  switch (o) {
    case 'accepted':
      return 'accept';
    case 'rejected':
      return 'reject';
    case 'dropped':
      return 'drop';
    case 'error':
      return 'error';
    case 'refused':
      return 'refused';
  }
}

/** What the kernel must do for a flow explain decided: in audit mode nothing is blocked (SPEC §1 `mode`). */
export function expectedKernelVerdict(d: Decision): Verdict {
  return d.audit ? 'accept' : d.verdict;
}

/**
 * How a reject reached the socket, to hold it against SPEC §2 ("TCP reset for
 * TCP, ICMP/ICMPv6 administratively-prohibited otherwise").
 */
export function rejectForm(r: ProbeResult): 'tcp-reset' | 'admin-prohibited' | 'port-unreachable' | 'other' {
  const d = r.detail;
  if (r.probe.proto === 'tcp') return d === 'ECONNREFUSED' ? 'tcp-reset' : d === 'EHOSTUNREACH' || d === 'EACCES' ? 'admin-prohibited' : 'other';
  if (r.probe.proto === 'udp') return d === 'EHOSTUNREACH' || d === 'EACCES' ? 'admin-prohibited' : d === 'ECONNREFUSED' ? 'port-unreachable' : 'other';
  return /filtered|administratively prohibited/i.test(d) ? 'admin-prohibited' : /port unreachable/i.test(d) ? 'port-unreachable' : 'other';
}

/** The SPEC form of a reject for this probe's protocol. */
export function specRejectForm(p: Probe): 'tcp-reset' | 'admin-prohibited' {
  return p.proto === 'tcp' ? 'tcp-reset' : 'admin-prohibited';
}

function ownerFor(id: number, table: Map<string, number> | undefined): Owner {
  for (const [name, i] of table ?? []) if (i === id) return { id, name };
  return { id };
}

/**
 * The flow explain should be asked about for a probe: a new connection, as
 * its uid and gid; for a forwarded probe, from its container's address on
 * its host-side interface, leaving through `via` (the host's link to the
 * world), with no owner.
 */
export function probeFlow(p: Probe, accounts?: Accounts, via?: string): Flow {
  const a = parseAddress(p.dst);
  if (!a) throw new ProbeError(`bad probe destination ${JSON.stringify(p.dst)}`);
  const f: Flow = { family: a.family, dst: a.value, proto: p.proto };
  if (p.from) {
    const src = parseAddress(p.from.src);
    if (!src || src.family !== a.family) throw new ProbeError(`forwarded probe to ${p.dst} from ${JSON.stringify(p.from.src)}: not an address of its family`);
    f.forwarded = { src: src.value, in: p.from.in };
    if (via !== undefined) f.via = via;
  } else {
    f.user = ownerFor(p.uid, accounts?.users);
    f.group = ownerFor(p.gid, accounts?.groups);
  }
  if (p.proto === 'icmp') f.icmpType = icmpTypeNumber('echo-request', a.family)!;
  else f.port = p.port!;
  return f;
}

/** A probe as one short line: `tcp/443 to 192.0.2.1 as uid 33`; forwarded: `tcp/443 to 192.0.2.1 from 198.51.100.1 in br-lab0`. */
export function probeText(p: Probe, names?: { user?: string; group?: string }): string {
  const what = p.proto === 'icmp' ? 'icmp echo-request' : `${p.proto}/${p.port}`;
  if (p.from) return `${what} to ${p.dst} from ${p.from.src} in ${p.from.in}`;
  const who = names?.user ? `${names.user} (uid ${p.uid})` : `uid ${p.uid}`;
  return `${what} to ${p.name !== undefined ? `${p.name} (${p.dst})` : p.dst} as ${who}${p.gid !== p.uid || names?.group ? ` gid ${p.gid}` : ''}`;
}

/** Canonical text for an address value (for probes built from IR intervals). */
export function addressText(family: Family, v: bigint): string {
  return formatAddress(family, v);
}
