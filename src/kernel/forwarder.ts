/**
 * The DNS forwarder as the life cycle runs it (`dns.proxy`, SPEC §5): one
 * per host, as uid 0 with the primary group `egress-dns` — the one identity
 * whose DNS the ruleset does not redirect (backends/nft/dns.ts) — restarted
 * whenever what is live changes, stopped when egress is removed. Two ways to
 * run it (`chooseForwarder`):
 *
 * - **systemd** (PID 1 is systemd, same network namespace): the service
 *   `egress-dns.service` (kernel/units.ts), written to /run/systemd/system
 *   and started with `systemctl restart`; systemd restarts it when it dies.
 *   `egress persist` installs the same unit in /etc/systemd/system, enabled,
 *   so boot starts it after egress-restore.service.
 * - **process** (anything else, and the kernel tests' namespaces): a detached
 *   process in its own session, like the confirm watchdog. Nothing restarts
 *   it but the next egress command that takes the lock.
 *
 * Either way its files live in the state directory:
 *
 * - `dns-forwarder.json`: what it runs (`{ config, logFile, … }`, src/dns/main.ts);
 * - `dns-forwarder.pid`: its pid and start time (written by the forwarder
 *   once ready, and for the detached process also when started), so a
 *   recycled pid is never signalled; `unit` when systemd runs it;
 * - `dns-forwarder.out`: what it prints (`ready …` once it listens with its
 *   nft writer up; its errors);
 * - `dns-forwarder.log`: its records, one JSON object a line, renamed to
 *   `dns-forwarder.log.1` at 16 MiB (src/dns/log-file.ts); `stats`, `learn`
 *   and `replay` read both (src/logs/dns-log.ts).
 *
 * Fail closed: while it is down, the ruleset still redirects every query to
 * where it listened, so lookups fail and nothing new is admitted; what it
 * learned stays in the kernel until it times out.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { NftForwarderConfig } from '../backends/nft/dns.js';
import type { IrDns } from '../ir/types.js';
import { chooseUpstream, RESOLV_CONF, RESOLVED_CONF } from '../resolve/dns.js';
import { writeFileAtomic } from './atomic.js';
import { systemdUsable, type SelfCommand } from './confirm.js';
import { processStartTime, waitFor } from './lock.js';
import { DNS_UNIT_NAME, renderDnsUnit, systemdDirOf } from './units.js';
import { runIn, type Where } from './where.js';

export const DNS_GROUP = 'egress-dns';
export const FORWARDER_SPEC = 'dns-forwarder.json';
export const FORWARDER_PID = 'dns-forwarder.pid';
export const FORWARDER_OUT = 'dns-forwarder.out';
export const FORWARDER_LOG = 'dns-forwarder.log';
export const FORWARDER_COUNTERS = 'dns-forwarder.counters.json';
/** The handle of `table inet egress` when the forwarder started (see tableHandle). */
export const FORWARDER_TABLE = 'dns-forwarder.table';
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
  /** The systemd unit that runs it (set by the forwarder from EGRESS_DNS_UNIT). */
  unit?: string;
}

export type ForwarderKind = 'systemd' | 'process';

/** How this host runs the forwarder, and where its unit goes. */
export interface ForwarderRun {
  kind: ForwarderKind;
  /** How to run egress itself (confirm.ts selfCommand). */
  self: SelfCommand;
  /** Where the life cycle writes the unit: /run/systemd/system (`EGRESS_SYSTEMD_RUNTIME_DIR`). */
  runtimeDir: string;
  /** Where `persist` installs it: /etc/systemd/system (`EGRESS_SYSTEMD_DIR`); kept equal when there. */
  persistDir: string;
}

export const DEFAULT_RUNTIME_UNIT_DIR = '/run/systemd/system';

/**
 * systemd when PID 1 is systemd and the forwarder would run in its network
 * namespace (a named one, as the tests use, never is); else a detached
 * process. `EGRESS_FORWARDER=process|systemd` forces a choice.
 */
export function chooseForwarder(env: Record<string, string | undefined>, w: Pick<Where, 'netns'>): ForwarderKind {
  const want = env.EGRESS_FORWARDER;
  if (want === 'process' || want === 'systemd') return want;
  return w.netns === undefined && systemdUsable() ? 'systemd' : 'process';
}

export function forwarderRunOf(env: Record<string, string | undefined>, w: Pick<Where, 'netns'>, self: SelfCommand): ForwarderRun {
  return {
    kind: chooseForwarder(env, w),
    self,
    runtimeDir: env.EGRESS_SYSTEMD_RUNTIME_DIR || DEFAULT_RUNTIME_UNIT_DIR,
    persistDir: systemdDirOf(env),
  };
}

/**
 * The forwarder's whole command line, for the detached process and the
 * unit's ExecStart= alike: node and its flags, egress, `_dns-forwarder SPEC`.
 * Flags for the forwarder's node process go here, so both paths get them.
 */
export function forwarderCommand(self: SelfCommand, stateDir: string): string[] {
  // self[0] is node (confirm.ts selfCommand): its own flags come first.
  return [self[0]!, ...FORWARDER_NODE_FLAGS, ...self.slice(1), '_dns-forwarder', join(stateDir, FORWARDER_SPEC)];
}

/** The unit for this state directory, as the life cycle and `persist` write it. */
export function forwarderUnit(self: SelfCommand, stateDir: string): string {
  return renderDnsUnit(forwarderCommand(self, stateDir), stateDir);
}

/** Write `dns-forwarder.json`: the configuration and where the forwarder keeps its log, counters and pid. */
export function writeForwarderSpec(stateDir: string, config: NftForwarderConfig): void {
  const spec = {
    config,
    logFile: join(stateDir, FORWARDER_LOG),
    countersFile: join(stateDir, FORWARDER_COUNTERS),
    pidFile: join(stateDir, FORWARDER_PID),
  };
  writeFileAtomic(join(stateDir, FORWARDER_SPEC), JSON.stringify(spec, null, 2) + '\n', 0o600);
}

/** No forwarder wanted (boot restored a ruleset without dns.proxy, or none): its unit's condition then skips it. */
export function removeForwarderSpec(stateDir: string): void {
  rmSync(join(stateDir, FORWARDER_SPEC), { force: true });
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

/** Whether a unit of ours for the forwarder is there to stop (written by an earlier start or by persist). */
function unitKnown(run: ForwarderRun): boolean {
  return existsSync(join(run.runtimeDir, DNS_UNIT_NAME)) || existsSync(join(run.persistDir, DNS_UNIT_NAME));
}

/**
 * Stop the forwarder, however it runs: its unit (`systemctl stop`, which
 * systemd does not count as a death to restart after), and a detached
 * process this state directory started (SIGTERM, then SIGKILL). True when
 * one was running.
 */
export async function stopForwarder(w: Pick<Where, 'execer'>, stateDir: string, run: ForwarderRun): Promise<boolean> {
  const r = forwarderRunning(stateDir);
  rmSync(join(stateDir, FORWARDER_PID), { force: true });
  rmSync(join(stateDir, FORWARDER_COUNTERS), { force: true });
  if (r?.unit !== undefined || (run.kind === 'systemd' && unitKnown(run))) {
    const s = await w.execer.run('systemctl', ['stop', DNS_UNIT_NAME], { timeoutMs: 30_000 });
    if (s.code !== 0 && s.code !== 5) throw new ForwarderError(`cannot stop ${DNS_UNIT_NAME}: ${(s.stderr || s.stdout).trim() || `systemctl exited ${s.code}`}`);
  }
  if (!r) return false;
  if (r.unit !== undefined) return true;
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
 * The kernel's handle of `table inet egress`, undefined when there is none.
 * A reload keeps the table (and the forwarder's sets) and so its handle; only
 * one that had to replace the table (kernel/nft.ts withLearned: a set
 * declared differently, a table an older egress loaded) gives a new one. The
 * forwarder answers without holding for addresses it confirmed itself
 * (src/dns/forwarder.ts step 7): after a replacement, what it published
 * between apply's read and its load is gone, so it is restarted with nothing
 * taken for granted.
 */
export async function tableHandle(w: Where): Promise<number | undefined> {
  const r = await runIn(w, ['nft', '-j', 'list', 'tables']);
  if (r.code !== 0) return undefined;
  try {
    const doc = JSON.parse(r.stdout) as { nftables?: { table?: { family?: string; name?: string; handle?: number } }[] };
    return doc.nftables?.find((o) => o.table?.family === 'inet' && o.table.name === 'egress')?.table?.handle;
  } catch {
    return undefined;
  }
}

/** Whether the table is still the one the running forwarder started with (see tableHandle). */
export async function sameTable(w: Where, stateDir: string): Promise<boolean> {
  let recorded: string;
  try {
    recorded = readFileSync(join(stateDir, FORWARDER_TABLE), 'utf8').trim();
  } catch {
    return false;
  }
  return recorded === String((await tableHandle(w)) ?? '');
}

/**
 * (Re)start the forwarder with `config` in `w`'s network namespace and wait
 * until it says it is ready (listening, nft writer up). A forwarder that
 * dies or does not get ready in time is an error with what it printed, and
 * is stopped (a unit is not left restarting it behind the error).
 */
export async function startForwarder(w: Where, stateDir: string, run: ForwarderRun, config: NftForwarderConfig, gid: number): Promise<void> {
  await stopForwarder(w, stateDir, run);
  if (!config.upstream.length) throw new ForwarderError('dns.proxy: no upstream DNS server (dns.upstream is not set, and neither /etc/resolv.conf nor systemd-resolved names one that is not this host)');
  const out = join(stateDir, FORWARDER_OUT);
  writeForwarderSpec(stateDir, config);
  rmSync(out, { force: true });
  const printed = () => (existsSync(out) && statSync(out).size ? readFileSync(out, 'utf8') : '');
  const isReady = () => /^ready /m.test(printed());
  let ready: boolean;
  if (run.kind === 'systemd') {
    await installUnit(w, run, stateDir);
    const r = await w.execer.run('systemctl', ['restart', DNS_UNIT_NAME], { timeoutMs: 60_000 });
    if (r.code !== 0) {
      await stopForwarder(w, stateDir, run);
      throw new ForwarderError(`the DNS forwarder did not start: systemctl restart ${DNS_UNIT_NAME}: ${(r.stderr || r.stdout).trim() || `exit ${r.code}`}`);
    }
    // systemd restarts a forwarder that dies, so there is no exit to wait for: the ready line says one is up, the CLI's error line that one died.
    ready = await waitFor(() => isReady() || /^egress: error: /m.test(printed()), READY_TIMEOUT_MS);
  } else {
    const [cmd, ...args] = forwarderCommand(run.self, stateDir);
    const { pid } = w.execer.detach(cmd!, args, {
      logPath: out,
      env: FORWARDER_ENV,
      gid,
      cwd: '/',
      ...(w.netns !== undefined ? { netns: w.netns } : {}),
    });
    if (pid === undefined) throw new ForwarderError('cannot start the DNS forwarder');
    // With a namespace the pid is that of `ip netns exec`, which execs the forwarder in place: same process.
    const start = processStartTime(pid);
    writeFileAtomic(join(stateDir, FORWARDER_PID), JSON.stringify({ pid, ...(start ? { start } : {}) }) + '\n', 0o600);
    ready = await waitFor(() => isReady() || processStartTime(pid) === undefined, READY_TIMEOUT_MS);
  }
  if (ready && isReady()) {
    writeFileAtomic(join(stateDir, FORWARDER_TABLE), `${(await tableHandle(w)) ?? ''}\n`, 0o600);
    return;
  }
  await stopForwarder(w, stateDir, run);
  throw new ForwarderError(`the DNS forwarder did not start${ready ? '' : ` within ${READY_TIMEOUT_MS / 1000} s`}: ${printed().trim().split('\n').slice(-3).join('; ') || 'it printed nothing'}`);
}

/**
 * Write the unit where the life cycle keeps it (and over persist's copy,
 * when there is one, so boot runs what was last started); reload systemd
 * when a file changed.
 */
async function installUnit(w: Pick<Where, 'execer'>, run: ForwarderRun, stateDir: string): Promise<void> {
  const text = forwarderUnit(run.self, stateDir);
  const persisted = join(run.persistDir, DNS_UNIT_NAME);
  let changed = false;
  for (const path of [join(run.runtimeDir, DNS_UNIT_NAME), ...(existsSync(persisted) ? [persisted] : [])]) {
    if (readOrEmpty(path) === text) continue;
    mkdirSync(run.runtimeDir, { recursive: true });
    writeFileAtomic(path, text, 0o644);
    changed = true;
  }
  if (changed) {
    const r = await w.execer.run('systemctl', ['daemon-reload'], { timeoutMs: 60_000 });
    if (r.code !== 0) throw new ForwarderError(`systemctl daemon-reload: ${(r.stderr || r.stdout).trim() || `exit ${r.code}`}`);
  }
}
