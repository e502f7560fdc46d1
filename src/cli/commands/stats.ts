/**
 * `egress stats [LOG…] [--journal|--kmsg] [--since T] [--policy P] [--prefix P]
 * [--json|--prometheus] [--output FILE] [--follow] [--sample]`: denied
 * connections from kernel logs. Also the pieces `learn` and `replay` share:
 * which sources to read, how, and the policy context names come from.
 */
import { existsSync } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { uptime } from 'node:os';
import { resolve as resolvePath } from 'node:path';
import { writeFileAtomic } from '../../kernel/atomic.js';
import { realExecer, type Execer } from '../../kernel/exec.js';
import type { Loaded } from '../../index.js';
import { StatsBuilder, type Stats, type StatsContext } from '../../observe/aggregate.js';
import { analyzeChanges, readHistory, type ChangeStat, type History } from '../../observe/changes.js';
import { appendSample } from '../../observe/counters.js';
import { readStatus, type RuleCounter, type Status } from '../../kernel/status.js';
import { readState, stateDirOf } from '../../kernel/state.js';
import { parseAddress, formatAddress } from '../../policy/address.js';
import { Deduper } from '../../observe/dedupe.js';
import type { LogEvent } from '../../observe/event.js';
import { statsParallel, workerScript, workersFor } from '../../observe/parallel.js';
import { toPrometheus } from '../../observe/prometheus.js';
import { LogReader, ReadError, type LogSource, type ReadOptions } from '../../observe/read.js';
import { renderStats, statsJson } from '../../observe/render.js';
import { accountNames, hostsByAddress } from '../../observe/replay.js';
import { formatLocal, parseSince } from '../../observe/since.js';
import { systemResolver, type Accounts } from '../../resolve/resolver.js';
import { CommandError, UsageError, type Io } from '../io.js';
import { failed, load, writeJson, type PolicyFlags } from '../shared.js';

export interface SourceFlags {
  journal?: boolean;
  kmsg?: boolean;
  since?: string;
  prefix?: string[];
  follow?: boolean;
}

export interface StatsFlags extends SourceFlags, PolicyFlags {
  policy?: string;
  prometheus?: boolean;
  output?: string;
  top?: string;
  interval?: string;
  sample?: boolean;
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
  /** What is live (default: kernel/status.ts readStatus; tests pass a fake). */
  status?: () => Promise<Status>;
  uid?: number;
}

export const DEFAULT_LOGS = ['/var/log/kern.log', '/var/log/messages'];

/** LOG arguments and --journal/--kmsg → sources; with none, the system's kernel log. */
export function sourcesOf(io: Io, logs: readonly string[], flags: SourceFlags, seams: ObserveSeams = {}): LogSource[] {
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
  if (!out.length) {
    const found = (seams.defaultLogs ?? DEFAULT_LOGS).find((p) => existsSync(p));
    if (!found) throw new UsageError(`no log given, and none of ${(seams.defaultLogs ?? DEFAULT_LOGS).join(', ')} exists: give LOG files ("-" for standard input), --journal or --kmsg`);
    out.push({ kind: 'file', path: found, name: found });
  }
  return out;
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
 * Names for the report: hosts and rules from the policy (when given), else
 * hosts from what is live (the state directory keeps the last known good
 * addresses of the applied policy's hostnames); users from the accounts.
 */
export async function contextOf(io: Io, loaded: Loaded | undefined): Promise<{ ctx: StatsContext; accounts: Accounts }> {
  const accounts = await (io.resolver ?? systemResolver()).accounts();
  const ctx: StatsContext = { users: accountNames(accounts).users };
  if (loaded?.ir) {
    ctx.hosts = hostsByAddress(loaded.ir);
    ctx.ruleNames = [...new Set(loaded.ir.rules.map((r) => r.origin.name))];
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

/** Load `--policy` when given; undefined when not given, a number (exit code) when it failed. */
export async function loadOptionalPolicy(io: Io, file: string | undefined, flags: PolicyFlags): Promise<Loaded | number | undefined> {
  if (file === undefined) return undefined;
  const l = await load(io, file, flags);
  return failed(l) ? 1 : l;
}

/** Run the reader, turning unreadable sources into exit-1 errors. */
export async function runReader(reader: LogReader): Promise<void> {
  try {
    await reader.run();
  } catch (e) {
    if (e instanceof ReadError) throw new CommandError(e.message);
    throw e;
  }
}

function positiveInt(v: string | undefined, flag: string, dflt: number, max = 100_000): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new UsageError(`${flag} must be a whole number from 1 to ${max}`);
  return n;
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

export async function statsCommand(io: Io, logs: string[], flags: StatsFlags, seams: ObserveSeams = {}): Promise<number> {
  if (flags.json && flags.prometheus) throw new UsageError('give --json or --prometheus, not both');
  if (flags.sample) return sampleCommand(io, flags, seams);
  const top = positiveInt(flags.top, '--top', 10);
  const intervalMs = positiveInt(flags.interval, '--interval', 10, 86_400) * 1000;
  const loaded = await loadOptionalPolicy(io, flags.policy, flags);
  if (typeof loaded === 'number') return loaded;
  const prefixes = flags.prefix?.length ? flags.prefix : loaded?.policy ? [loaded.policy.log.prefix] : undefined;
  const sources = sourcesOf(io, logs, flags, seams);
  const stop = flags.follow ? stopSignal(seams) : undefined;
  const opts = readOptionsOf(io, flags, { ...seams, ...(stop ? { signal: stop.signal } : {}) }, prefixes);
  const { ctx } = await contextOf(io, loaded);
  let history: History | undefined;
  try {
    history = readHistory(stateDirOf(io.env));
  } catch {
    history = undefined;
  }
  const counters = await liveCounters(io, seams);

  let builder = new StatsBuilder();
  const dedupe = new Deduper();
  const reader = new LogReader(sources, opts, (e: LogEvent) => builder.add(e, dedupe.isNew(e)));
  let counts = () => reader.counts;

  const report = async (final: boolean): Promise<void> => {
    const s = builder.finish(counts(), ctx, Math.max(top, 20));
    const live = sources.some((x) => x.kind !== 'file') || !!flags.follow;
    const changes = history && history.entries.length ? analyzeChanges(history.entries, s.minutes, coverage(s, live ? Date.now() : undefined, opts.since)) : undefined;
    const text = flags.prometheus
      ? toPrometheus(s, { topDestinations: top, ...(changes ? { changes } : {}) })
      : flags.json
        ? JSON.stringify({ ...statsJson(s, { top, ...(changes ? { changes } : {}) }), kernelCounters: counters.json }, null, flags.follow ? 0 : 2) + '\n'
        : renderStats(s, { top, ...(changes ? { changes } : {}), historyNote: historyNote(history), counters: counters.lines });
    if (flags.output) writeFileAtomic(resolvePath(io.cwd, flags.output), text, 0o644);
    else if (flags.follow && !final && io.isTty && !flags.json && !flags.prometheus) io.stdout(`\x1b[H\x1b[2J${text}`);
    else io.stdout(flags.follow && !flags.json && !flags.prometheus ? `${formatLocal(Date.now())}\n${text}\n` : text);
  };

  if (!flags.follow) {
    const par = await parallelPlan(sources, io.env.EGRESS_STATS_WORKERS);
    if (par) {
      // Big plain log files: one worker thread per part (observe/parallel.ts), the same answer as reading in order.
      let r;
      try {
        r = await statsParallel(par.files, { now: opts.now, ...(opts.bootTimeMs !== undefined ? { bootTimeMs: opts.bootTimeMs } : {}), ...(opts.since !== undefined ? { since: opts.since } : {}), ...(opts.prefixes ? { prefixes: opts.prefixes } : {}) }, par.workers, par.script);
      } catch (e) {
        if (e instanceof ReadError) throw new CommandError(e.message);
        throw e;
      }
      builder = r.builder;
      counts = () => r.counts;
    } else await runReader(reader);
    await report(true);
    return 0;
  }
  const timer = setInterval(() => void report(false), intervalMs);
  try {
    await runReader(reader);
  } finally {
    clearInterval(timer);
    stop?.dispose();
  }
  await report(true);
  return 0;
}

/**
 * Whether to read in parallel: only plain kernel log files (gzip included,
 * Windows Firewall logs not), big enough to be worth the threads (or
 * EGRESS_STATS_WORKERS says how many), and only when the compiled worker
 * script exists. Files in reading order (oldest first).
 */
async function parallelPlan(sources: readonly LogSource[], workersEnv: string | undefined): Promise<{ files: { path: string; name: string }[]; workers: number; script: string } | undefined> {
  const script = workerScript();
  if (!script || !sources.length || sources.some((s) => s.kind !== 'file')) return undefined;
  const files = sources as Extract<LogSource, { kind: 'file' }>[];
  let bytes = 0;
  const withTime: { path: string; name: string; mtime: number }[] = [];
  for (const f of files) {
    let st;
    try {
      st = await stat(f.path);
    } catch {
      return undefined; // let the sequential reader report it
    }
    if (!st.isFile()) return undefined;
    const head = Buffer.alloc(16);
    const fh = await open(f.path, 'r');
    try {
      await fh.read(head, 0, 16, 0);
    } finally {
      await fh.close();
    }
    if (head[0] === 0x23 /* # */ || (head[0] === 0xef && head[3] === 0x23)) return undefined; // Windows Firewall log
    bytes += st.size;
    withTime.push({ path: f.path, name: f.name, mtime: st.mtimeMs });
  }
  // EGRESS_STATS_WORKERS=N overrides the choice (1 = read in order in this thread), e.g. for benchmarks.
  const forced = workersEnv !== undefined && /^\d+$/.test(workersEnv) ? Math.min(64, Number(workersEnv)) : undefined;
  const workers = forced ?? workersFor(bytes);
  if (workers < 2) return undefined;
  withTime.sort((a, b) => a.mtime - b.mtime);
  return { files: withTime.map(({ path, name }) => ({ path, name })), workers, script };
}

/**
 * Exact per-rule counters of the live ruleset (deny rules and the default:
 * what denied), through the life cycle's status reader. Needs root and an
 * applied policy; otherwise a one-line note says why they are not shown.
 */
async function liveCounters(io: Io, seams: ObserveSeams): Promise<{ lines: string[]; json: { counters?: RuleCounter[]; note?: string } }> {
  const note = (n: string) => ({ lines: [`not shown: ${n}`], json: { note: n } });
  const uid = seams.uid ?? process.getuid?.();
  if (!seams.status && uid !== undefined && uid !== 0) return note('reading the live ruleset needs root');
  if (!seams.status && !existsSync(stateDirOf(io.env))) return note('nothing of egress is applied on this host');
  let st: Status;
  try {
    st = await (seams.status ?? (() => readStatus({ x: seams.execer ?? realExecer() }, stateDirOf(io.env), io.now ?? new Date())))();
  } catch (e) {
    return note(`the live ruleset could not be read (${(e as Error).message.split('\n')[0]})`);
  }
  if (!st.applied) return note('nothing of egress is applied on this host');
  const denying = st.counters.filter((c) => c.action === 'deny' || (c.action === 'default' && st.default !== 'accept'));
  const lines = denying.map((c) => `${(c.action === 'default' ? `(default ${c.rule})` : c.rule).padEnd(24)} ${(c.family ?? '').padEnd(5)} ${c.packets.toLocaleString('en-US').padStart(12)} packets ${c.bytes.toLocaleString('en-US').padStart(14)} bytes`);
  if (!lines.length) lines.push('no deny rule or denying default in the live ruleset');
  return { lines: [`${st.backend}, ${st.mode} mode, policy ${st.policyFile} (${(st.policyHash ?? '').replace(/^sha256:/, '').slice(0, 12)})`, ...lines], json: { counters: st.counters } };
}

function historyNote(h: History | undefined): string | undefined {
  if (!h) return 'the apply history could not be read';
  if (h.missing) return `no apply history (${h.path}): nothing applied with egress on this host yet`;
  if (!h.entries.length) return `the apply history (${h.path}) has no entries${h.skipped ? ` (${h.skipped} unreadable lines)` : ''}`;
  return h.skipped ? `${h.skipped} unreadable lines in ${h.path} skipped` : undefined;
}

/** What the logs read cover: from the first event (or --since) to the last event (or now, for live sources). */
function coverage(s: Stats, liveUntil: number | undefined, since: number | undefined): { from: number; to: number } | undefined {
  const from = since ?? s.first;
  const to = liveUntil ?? s.last;
  return from !== undefined && to !== undefined && to > from ? { from, to } : undefined;
}

/** `--sample`: append the live per-rule counters to $EGRESS_STATE_DIR/counters.jsonl (observe/counters.ts), for `egress stale`. */
async function sampleCommand(io: Io, flags: StatsFlags, seams: ObserveSeams): Promise<number> {
  const uid = seams.uid ?? process.getuid?.();
  if (!seams.status && uid !== undefined && uid !== 0) throw new CommandError('stats --sample needs root: it reads the live ruleset\'s counters; run it with sudo');
  const dir = stateDirOf(io.env);
  let st: Status;
  try {
    st = await (seams.status ?? (() => readStatus({ x: seams.execer ?? realExecer() }, dir, io.now ?? new Date())))();
  } catch (e) {
    throw new CommandError(`cannot read the live counters: ${(e as Error).message.split('\n')[0]}`);
  }
  if (!st.applied) throw new CommandError('nothing of egress is applied on this host: no counters to sample');
  const sample = {
    time: (io.now ?? new Date()).toISOString(),
    ...(st.policyHash ? { policyHash: st.policyHash } : {}),
    ...(st.backend ? { backend: st.backend } : {}),
    counters: st.counters.map((c) => ({ rule: c.rule, action: c.action, ...(c.family ? { family: c.family } : {}), packets: c.packets, bytes: c.bytes })),
  };
  const path = await appendSample(dir, sample);
  if (flags.json) writeJson(io, { ok: true, file: path, counters: sample.counters.length });
  else io.stdout(`recorded ${sample.counters.length} counters in ${path}\n`);
  return 0;
}

export type { ChangeStat };
