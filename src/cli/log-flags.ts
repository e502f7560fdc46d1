/**
 * What the log commands (stats, learn, replay) share: their seams and source
 * flags, which sources to read and how, the names a report gives hosts and
 * users, and read failures mapped to exit codes. Glue only: the reading is in
 * src/logs/, the analyses in src/observe/, the output in src/report/.
 */
import { existsSync } from 'node:fs';
import { uptime } from 'node:os';
import { join, resolve as resolvePath } from 'node:path';
import type { Loaded } from '../index.js';
import { realExecer, type Execer } from '../kernel/exec.js';
import { FORWARDER_LOG } from '../kernel/forwarder.js';
import { readState, stateDirOf } from '../kernel/state.js';
import type { StatsContext } from '../observe/aggregate.js';
import { readableDnsLogFiles, readDnsLog, type DnsReadCounts, type NameRecord } from '../logs/dns-log.js';
import type { ReadCounts } from '../logs/event.js';
import { ReadError, type LogSource, type ReadOptions } from '../logs/read.js';
import { accountNames, hostsByAddress } from '../observe/replay.js';
import { parseSince } from '../logs/since.js';
import { formatAddress, parseAddress } from '../policy/address.js';
import { systemResolver, type Accounts } from '../resolve/resolver.js';
import { CommandError, UsageError, type Io } from './io.js';
import { startProgress, totalBytes, type Progress, type ProgressSample } from './progress.js';

export interface SourceFlags {
  /** The DNS forwarder's log files (stats, learn); default: the state directory's, when there is one. */
  dnsLog?: string[];
  journal?: boolean;
  kmsg?: boolean;
  since?: string;
  prefix?: string[];
  follow?: boolean;
  /** No progress on standard error, and no note of the log chosen. */
  quiet?: boolean;
}

/** What tests (and the kernel round trip) replace. */
export interface ObserveSeams {
  execer?: Execer;
  /** Stops --follow (default: SIGINT/SIGTERM). */
  signal?: AbortSignal;
  bootTimeMs?: number;
  /** Instead of /dev/kmsg. */
  kmsgPath?: string;
  pollMs?: number;
  /** Candidates for the default log, instead of /var/log/kern.log and /var/log/messages. */
  defaultLogs?: string[];
  /** Whether standard error is a terminal: progress is drawn only then (default: process.stderr.isTTY). */
  stderrTty?: boolean;
}

export const DEFAULT_LOGS = ['/var/log/kern.log', '/var/log/messages'];

/** LOG arguments and --journal/--kmsg → sources; with none, the system's kernel log (defaultSource). */
export async function sourcesOf(io: Io, logs: readonly string[], flags: SourceFlags, seams: ObserveSeams = {}): Promise<LogSource[]> {
  if (flags.journal && flags.kmsg) throw new UsageError('give --journal or --kmsg, not both');
  const out: LogSource[] = [];
  let stdin = false;
  for (const l of logs) {
    if (l === '-') {
      if (stdin) throw new UsageError('"-" (standard input) given twice');
      stdin = true;
      out.push({ kind: 'stdin', chunks: io.stdinChunks ?? (async function* () { yield await (io.stdin?.() ?? ''); }) });
    } else out.push({ kind: 'file', path: resolvePath(io.cwd, l), name: l });
  }
  if (flags.journal) out.push({ kind: 'journal' });
  if (flags.kmsg) out.push({ kind: 'kmsg', ...(seams.kmsgPath ? { path: seams.kmsgPath } : {}) });
  if (!out.length) out.push(await defaultSource(io, flags, seams));
  return out;
}

/**
 * The kernel log of this host, when none is given, said on standard error:
 * the journal where it holds kernel messages (`journalctl -k -n 1` exits 0
 * with a record: journald-only hosts, Debian 12 without rsyslog, have no
 * kern.log), else /var/log/kern.log, else /var/log/messages. `journalctl -k`
 * is this boot's kernel messages; a kern.log keeps earlier boots too, so
 * name it to read those.
 */
async function defaultSource(io: Io, flags: SourceFlags, seams: ObserveSeams): Promise<LogSource> {
  const say = (what: string) => flags.quiet || io.stderr(`egress: no log given: reading ${what}\n`);
  const x = seams.execer ?? realExecer();
  // Not installed (127), no permission to read it, or nothing of the kernel's in it: the files.
  const r = await x.run('journalctl', ['-k', '-n', '1', '-o', 'json', '-q', '--no-pager'], { timeoutMs: 30_000 }).catch(() => undefined);
  if (r?.code === 0 && r.stdout.trim()) {
    say("the journal (journalctl -k: this boot's kernel messages)");
    return { kind: 'journal' };
  }
  const candidates = seams.defaultLogs ?? DEFAULT_LOGS;
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new UsageError(`no log given, the journal has no kernel messages (journalctl -k), and none of ${candidates.join(', ')} exists: give LOG files ("-" for standard input), --journal or --kmsg`);
  say(found);
  return { kind: 'file', path: found, name: found };
}

/**
 * When no line was an event but other netfilter lines were there: the
 * prefixes those lines carry (seen in the log, the most frequent first),
 * and the flag that would count them. Undefined when there is nothing to say.
 */
export function prefixHint(counts: ReadCounts, seen: ReadonlyMap<string, number>, flags: SourceFlags): string | undefined {
  if (counts.events > 0 || counts.other === 0) return undefined;
  const top = [...seen].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, 3);
  const asked = flags.prefix?.length ? `with prefix ${flags.prefix.map((p) => JSON.stringify(p)).join(', ')}` : 'with an egress tag';
  if (!top.length) return `egress: hint: no lines ${asked}; ${counts.other.toLocaleString('en-US')} netfilter lines of other LOG rules\n`;
  const shown = top.map(([p, n]) => `${JSON.stringify(p)} (${n.toLocaleString('en-US')})`).join(', ');
  return `egress: hint: no lines ${asked}; the ${counts.other.toLocaleString('en-US')} netfilter lines of other LOG rules carry ${shown}${seen.size > top.length ? ', …' : ''}: to count them, --prefix ${shellWord(top[0]![0])}\n`;
}

/** A word for a shell command line (single-quoted when it needs to be). */
function shellWord(s: string): string {
  return /^[A-Za-z0-9_.:=/-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * The DNS forwarder's log files to read: `--dns-log` files as given, else
 * the state directory's `dns-forwarder.log.1` and `dns-forwarder.log` that
 * exist and this process may read (none: no names to report; the directory
 * is root's).
 */
export function dnsLogSources(io: Io, flags: SourceFlags): { path: string; name: string }[] {
  if (flags.dnsLog?.length) return flags.dnsLog.map((f) => ({ path: resolvePath(io.cwd, f), name: f }));
  return readableDnsLogFiles(join(stateDirOf(io.env), FORWARDER_LOG)).map((p) => ({ path: p, name: p }));
}

/** Read the DNS forwarder's log (see dnsLogSources); undefined when there is none. Unreadable files are exit-1 errors. */
export async function readDnsNames(io: Io, flags: SourceFlags, since: number | undefined, sink: (r: NameRecord) => void): Promise<DnsReadCounts | undefined> {
  const files = dnsLogSources(io, flags);
  if (!files.length) return undefined;
  return runReader(readDnsLog(files, since !== undefined ? { since } : {}, sink));
}

export function readOptionsOf(io: Io, flags: SourceFlags, seams: ObserveSeams, prefixes: string[] | undefined): ReadOptions {
  const now = (io.now ?? new Date()).getTime();
  let since: number | undefined;
  if (flags.since !== undefined) {
    since = parseSince(flags.since, io.now ?? new Date());
    if (since === undefined) throw new UsageError(`--since ${JSON.stringify(flags.since)}: give a date (2026-11-23), a date and time (2026-11-23T09:00), or an age (30m, 2h, 7d)`);
  }
  return {
    now,
    // dmesg and /dev/kmsg stamp seconds since boot; like `dmesg -T`, assume this boot (wrong after suspend).
    bootTimeMs: seams.bootTimeMs ?? Date.now() - uptime() * 1000,
    ...(since !== undefined ? { since } : {}),
    ...(prefixes?.length ? { prefixes } : {}),
    ...(flags.follow ? { follow: true } : {}),
    ...(seams.signal ? { signal: seams.signal } : {}),
    ...(seams.pollMs ? { pollMs: seams.pollMs } : {}),
    execer: seams.execer ?? realExecer(),
  };
}

/**
 * Names for the report: hosts, rules and forward sources from the policy (when given), else
 * hosts from what is live (the state directory keeps the last known good
 * addresses of the applied policy's hostnames); users from the accounts.
 */
export async function contextOf(io: Io, loaded: Loaded | undefined): Promise<{ ctx: StatsContext; accounts: Accounts }> {
  const accounts = await (io.resolver ?? systemResolver()).accounts();
  const ctx: StatsContext = { users: accountNames(accounts).users };
  if (loaded?.ir) {
    ctx.hosts = hostsByAddress(loaded.ir);
    ctx.ruleNames = [...new Set([...loaded.ir.rules, ...(loaded.ir.forward?.rules ?? [])].map((r) => r.origin.name))];
    // Forwarded denials are named by the sources they came from (SPEC §6).
    if (loaded.ir.forward) ctx.forwardSources = loaded.ir.forward.sources;
  } else {
    let live;
    try {
      live = readState(stateDirOf(io.env), 'live');
    } catch {
      live = undefined; // unreadable state: names are a nicety, not worth failing for
    }
    if (live?.kind === 'ruleset') {
      const hosts = new Map<string, string>();
      for (const h of live.hosts)
        for (const a of [...h.ipv4, ...h.ipv6]) {
          const p = parseAddress(a);
          if (p) hosts.set(formatAddress(p.family, p.value), h.name);
        }
      ctx.hosts = hosts;
    }
  }
  return { ctx, accounts };
}

/** Await a read (the sequential reader's or the parallel one's), turning unreadable sources into exit-1 errors. */
export async function runReader<T>(read: Promise<T>): Promise<T> {
  try {
    return await read;
  } catch (e) {
    if (e instanceof ReadError) throw new CommandError(e.message);
    throw e;
  }
}

/** Until SIGINT/SIGTERM (or the seam's signal). */
export function stopSignal(seams: ObserveSeams): { signal: AbortSignal; dispose: () => void } {
  if (seams.signal) return { signal: seams.signal, dispose: () => {} };
  const ac = new AbortController();
  const stop = () => ac.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return {
    signal: ac.signal,
    dispose: () => {
      process.removeListener('SIGINT', stop);
      process.removeListener('SIGTERM', stop);
    },
  };
}

/** Progress of reading `sources` (cli/progress.ts): drawn when standard error is a terminal, never with -q or --follow. */
export function progressOf(io: Io, flags: SourceFlags, seams: ObserveSeams, sources: readonly LogSource[], sample: () => ProgressSample): Progress {
  const tty = seams.stderrTty ?? !!process.stderr.isTTY;
  return startProgress(io, tty && !flags.quiet && !flags.follow, 'egress: reading', totalBytes(sources), sample);
}

/** Say prefixHint's hint on standard error, when there is one. */
export function sayPrefixHint(io: Io, counts: ReadCounts, seen: ReadonlyMap<string, number>, flags: SourceFlags): void {
  const h = prefixHint(counts, seen, flags);
  if (h) io.stderr(h);
}
