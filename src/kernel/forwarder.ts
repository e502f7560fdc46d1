/**
 * The DNS forwarder as the life cycle runs it (`dns.proxy`, SPEC §5): one
 * detached process per host, started as uid 0 with the primary group
 * `egress-dns` — the one identity whose DNS the ruleset does not redirect
 * (backends/nft/dns.ts) — restarted whenever what is live changes, stopped
 * when egress is removed. Its files live in the state directory:
 *
 * - `dns-forwarder.json`: what it runs (`{ config, logFile }`, src/dns/main.ts);
 * - `dns-forwarder.pid`: its pid and start time, so a recycled pid is never
 *   signalled;
 * - `dns-forwarder.out`: what it prints (`ready …` once it listens with its
 *   nft writer up; its errors);
 * - `dns-forwarder.log`: its records, one JSON object a line.
 *
 * Fail closed: while it is down, the ruleset still redirects every query to
 * where it listened, so lookups fail and nothing new is admitted; what it
 * learned stays in the kernel until it times out.
 */
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { NftForwarderConfig } from '../backends/nft/dns.js';
import type { IrDns } from '../ir/types.js';
import { chooseUpstream, RESOLV_CONF, RESOLVED_CONF } from '../resolve/dns.js';
import { writeFileAtomic } from './atomic.js';
import type { SelfCommand } from './confirm.js';
import { processStartTime, waitFor } from './lock.js';
import type { Where } from './where.js';

export const DNS_GROUP = 'egress-dns';
export const FORWARDER_SPEC = 'dns-forwarder.json';
export const FORWARDER_PID = 'dns-forwarder.pid';
export const FORWARDER_OUT = 'dns-forwarder.out';
export const FORWARDER_LOG = 'dns-forwarder.log';
export const FORWARDER_COUNTERS = 'dns-forwarder.counters.json';
/** How long the forwarder may hold an answer for the kernel's commit before it answers SERVFAIL: well inside a stub resolver's 5 s timeout, and far above a commit's milliseconds on a loaded host. */
export const HOLD_MS = 2000;
/**
 * How node runs the forwarder, a long-lived process with a small heap (RSS
 * measured at 10,000 names and ~52,000 live elements, bench/dns.mjs;
 * docs/dns-forwarder.md): node's defaults 102 MiB; a 1 MiB young generation
 * 87 MiB; with V8's size-over-speed mode and one malloc arena instead of one
 * per thread (glibc) 71–73 MiB. Adding `--jitless --no-expose-wasm` gives
 * 60–63 MiB at about twice the CPU per query: not the default. About 40 MiB
 * of any node process's RSS are its binary's pages, shared with other node
 * processes.
 */
export const FORWARDER_NODE_FLAGS = ['--max-semi-space-size=1', '--optimize-for-size'];
export const FORWARDER_ENV = { MALLOC_ARENA_MAX: '1' };
const READY_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 5_000;

export class ForwarderError extends Error {}

/** The upstream servers: the policy's `dns.upstream`, else what `chooseUpstream` finds in resolv.conf or systemd-resolved's list. */
export function forwarderUpstream(dns: IrDns, read: (path: string) => string = readOrEmpty): { address: string; port: number }[] {
  const servers = dns.upstream.length ? dns.upstream : chooseUpstream({}, { system: read(RESOLV_CONF), resolved: read(RESOLVED_CONF) }).servers;
  return servers.map((u) => ({ address: u.address, port: u.port }));
}

function readOrEmpty(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** The group the forwarder runs as, created (a system group) when this host lacks it; returns its gid. */
export async function ensureDnsGroup(w: Pick<Where, 'execer'>): Promise<number> {
  const look = async () => {
    const r = await w.execer.run('getent', ['group', DNS_GROUP], { timeoutMs: 10_000 });
    const gid = r.code === 0 ? Number(r.stdout.split(':')[2]) : NaN;
    return Number.isInteger(gid) ? gid : undefined;
  };
  const found = await look();
  if (found !== undefined) return found;
  const r = await w.execer.run('groupadd', ['--system', DNS_GROUP], { timeoutMs: 30_000 });
  const gid = await look();
  if (gid === undefined) throw new ForwarderError(`cannot create the group ${DNS_GROUP} the DNS forwarder runs as: ${(r.stderr || r.stdout).trim() || `groupadd exited ${r.code}`}`);
  return gid;
}

interface PidRecord {
  pid: number;
  start?: string;
}

function readPid(stateDir: string): PidRecord | undefined {
  try {
    const r = JSON.parse(readFileSync(join(stateDir, FORWARDER_PID), 'utf8')) as PidRecord;
    return Number.isInteger(r.pid) && r.pid > 1 ? r : undefined;
  } catch {
    return undefined;
  }
}

/** The running forwarder, when its recorded pid is still the process that was started. */
export function forwarderRunning(stateDir: string): PidRecord | undefined {
  const r = readPid(stateDir);
  if (!r) return undefined;
  const s = processStartTime(r.pid);
  return s !== undefined && (r.start === undefined || s === r.start) ? r : undefined;
}

/** The configuration the forwarder was last started with, as JSON (undefined when none). */
export function forwarderSpec(stateDir: string): string | undefined {
  try {
    return JSON.stringify((JSON.parse(readFileSync(join(stateDir, FORWARDER_SPEC), 'utf8')) as { config: unknown }).config);
  } catch {
    return undefined;
  }
}

/** The counters the running forwarder last wrote (queries, refused, servfail, holdTimeouts, …); undefined when none. */
export function forwarderCounters(stateDir: string): Record<string, number | string> | undefined {
  try {
    return JSON.parse(readFileSync(join(stateDir, FORWARDER_COUNTERS), 'utf8')) as Record<string, number | string>;
  } catch {
    return undefined;
  }
}

/** Stop the forwarder this state directory started, if it runs (SIGTERM, then SIGKILL); true when one was stopped. */
export async function stopForwarder(stateDir: string): Promise<boolean> {
  const r = forwarderRunning(stateDir);
  rmSync(join(stateDir, FORWARDER_PID), { force: true });
  rmSync(join(stateDir, FORWARDER_COUNTERS), { force: true });
  if (!r) return false;
  try {
    process.kill(r.pid, 'SIGTERM');
  } catch {
    return false;
  }
  const gone = () => {
    const s = processStartTime(r.pid);
    return s === undefined || (r.start !== undefined && s !== r.start);
  };
  if (!(await waitFor(gone, STOP_TIMEOUT_MS))) {
    try {
      process.kill(r.pid, 'SIGKILL');
    } catch {
      /* gone meanwhile */
    }
    await waitFor(gone, STOP_TIMEOUT_MS);
  }
  return true;
}

/**
 * (Re)start the forwarder with `config` in `w`'s network namespace and wait
 * until it says it is ready (listening, nft writer up). A forwarder that
 * dies or does not get ready in time is an error with what it printed.
 */
export async function startForwarder(w: Where, stateDir: string, self: SelfCommand, config: NftForwarderConfig, gid: number): Promise<PidRecord> {
  await stopForwarder(stateDir);
  if (!config.upstream.length) throw new ForwarderError('dns.proxy: no upstream DNS server (dns.upstream is not set, and neither /etc/resolv.conf nor systemd-resolved names one that is not this host)');
  const spec = join(stateDir, FORWARDER_SPEC);
  const out = join(stateDir, FORWARDER_OUT);
  writeFileAtomic(spec, JSON.stringify({ config, logFile: join(stateDir, FORWARDER_LOG), countersFile: join(stateDir, FORWARDER_COUNTERS) }, null, 2) + '\n', 0o600);
  rmSync(out, { force: true });
  // self[0] is node (confirm.ts selfCommand): its own flags come first.
  const { pid } = w.execer.detach(self[0]!, [...FORWARDER_NODE_FLAGS, ...self.slice(1), '_dns-forwarder', spec], {
    logPath: out,
    env: FORWARDER_ENV,
    gid,
    cwd: '/',
    ...(w.netns !== undefined ? { netns: w.netns } : {}),
  });
  if (pid === undefined) throw new ForwarderError('cannot start the DNS forwarder');
  // With a namespace the pid is that of `ip netns exec`, which execs the forwarder in place: same process.
  const rec: PidRecord = { pid, ...(processStartTime(pid) ? { start: processStartTime(pid)! } : {}) };
  writeFileAtomic(join(stateDir, FORWARDER_PID), JSON.stringify(rec) + '\n', 0o600);
  const printed = () => (existsSync(out) && statSync(out).size ? readFileSync(out, 'utf8') : '');
  const ready = await waitFor(() => /^ready /m.test(printed()) || processStartTime(pid) === undefined, READY_TIMEOUT_MS);
  if (ready && /^ready /m.test(printed())) return rec;
  await stopForwarder(stateDir);
  throw new ForwarderError(`the DNS forwarder did not start${ready ? '' : ` within ${READY_TIMEOUT_MS / 1000} s`}: ${printed().trim().split('\n').slice(-3).join('; ') || 'it printed nothing'}`);
}
