/**
 * `egress stats [LOG…] [--journal|--kmsg] [--since T] [--policy P] [--prefix P]
 * [--dns-log FILE] [--json|--prometheus] [--output FILE] [--follow] [--sample]`:
 * denied connections from kernel logs, and the names the DNS forwarder
 * answered and refused (its log, read once at the start).
 */
import { existsSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import type { Loaded } from '../../index.js';
import { writeFileAtomic } from '../../kernel/atomic.js';
import { realExecer } from '../../kernel/exec.js';
import { stateDirOf } from '../../kernel/state.js';
import { readStatus, type Status } from '../../kernel/status.js';
import { StatsBuilder } from '../../observe/aggregate.js';
import { analyzeChanges, coverage, readHistory, type History } from '../../observe/changes.js';
import { appendSample, sampleOf } from '../../observe/counters.js';
import { Deduper } from '../../observe/dedupe.js';
import { NameStatsBuilder, type NameStats } from '../../observe/names.js';
import type { LogEvent } from '../../logs/event.js';
import { parallelPlan, statsParallel } from '../../observe/parallel.js';
import { LogReader } from '../../logs/read.js';
import { formatIso } from '../../logs/since.js';
import { toPrometheus } from '../../report/prometheus.js';
import { historyNote, renderStats, statsJson, type KernelCounters } from '../../report/stats.js';
import { CommandError, UsageError, type Io } from '../io.js';
import { contextOf, progressOf, readDnsNames, readOptionsOf, runReader, sayPrefixHint, sourcesOf, stopSignal, type ObserveSeams, type SourceFlags } from '../log-flags.js';
import { envelopeText, writeResult } from '../envelope.js';
import { diagnosticsJson, failed, load, type PolicyFlags } from '../shared.js';

export interface StatsFlags extends SourceFlags, PolicyFlags {
  policy?: string;
  prometheus?: boolean;
  output?: string;
  top?: string;
  interval?: string;
  sample?: boolean;
}

/** The log seams, and what is live (the kernel counters and --sample). */
export interface StatsSeams extends ObserveSeams {
  /** What is live (default: kernel/status.ts readStatus; tests pass a fake). */
  status?: () => Promise<Status>;
  uid?: number;
}

/** Load `--policy` when given; undefined when not given, a number (exit code) when it failed. */
async function loadOptionalPolicy(io: Io, file: string | undefined, flags: PolicyFlags): Promise<Loaded | number | undefined> {
  if (file === undefined) return undefined;
  const l = await load(io, file, flags);
  if (!failed(l)) return l;
  if (flags.json) writeResult(io, 'stats', { ok: false, result: null, diagnostics: diagnosticsJson(l) });
  return 1;
}

function positiveInt(v: string | undefined, flag: string, dflt: number, max = 100_000): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new UsageError(`${flag} must be a whole number from 1 to ${max}`);
  return n;
}

/** EGRESS_STATS_WORKERS=N overrides the choice of threads (1 = read in order in this thread), e.g. for benchmarks. */
function workersOf(env: string | undefined): number | undefined {
  return env !== undefined && /^\d+$/.test(env) ? Math.min(64, Number(env)) : undefined;
}

export async function statsCommand(io: Io, logs: string[], flags: StatsFlags, seams: StatsSeams = {}): Promise<number> {
  if (flags.json && flags.prometheus) throw new UsageError('give --json or --prometheus, not both');
  if (flags.sample) return sampleCommand(io, flags, seams);
  const top = positiveInt(flags.top, '--top', 10);
  const intervalMs = positiveInt(flags.interval, '--interval', 10, 86_400) * 1000;
  const loaded = await loadOptionalPolicy(io, flags.policy, flags);
  if (typeof loaded === 'number') return loaded;
  const prefixes = flags.prefix?.length ? flags.prefix : loaded?.policy ? [loaded.policy.log.prefix] : undefined;
  const sources = await sourcesOf(io, logs, flags, seams);
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
  const nameBuilder = new NameStatsBuilder();
  const dnsCounts = await readDnsNames(io, flags, opts.since, (r) => nameBuilder.add(r));
  const names: NameStats | undefined = dnsCounts && nameBuilder.finish(dnsCounts, Math.max(top, 20), ctx.users);

  let builder = new StatsBuilder();
  const dedupe = new Deduper();
  const reader = new LogReader(sources, opts, (e: LogEvent) => builder.add(e, dedupe.isNew(e)));
  let counts = () => reader.counts;

  const report = async (final: boolean): Promise<void> => {
    const s = builder.finish(counts(), ctx, Math.max(top, 20));
    const live = sources.some((x) => x.kind !== 'file') || !!flags.follow;
    const changes = history && history.entries.length ? analyzeChanges(history.entries, s.minutes, coverage(s, live ? Date.now() : undefined, opts.since)) : undefined;
    const text = flags.prometheus
      ? toPrometheus(s, { topDestinations: top, ...(changes ? { changes } : {}), ...(counters.kind === 'status' ? { status: counters.status } : {}) })
      : flags.json
        ? envelopeText('stats', { ok: true, result: statsJson(s, { top, ...(changes ? { changes } : {}), counters, ...(names ? { names } : {}) }), diagnostics: loaded ? diagnosticsJson(loaded) : [] }, !!flags.follow)
        : renderStats(s, { top, ...(changes ? { changes } : {}), historyNote: historyNote(history), counters, ...(names ? { names } : {}), ...(io.columns ? { width: io.columns } : {}) });
    if (flags.output) writeFileAtomic(resolvePath(io.cwd, flags.output), text, 0o644);
    else if (flags.follow && !final && io.isTty && !flags.json && !flags.prometheus) io.stdout(`\x1b[H\x1b[2J${text}`);
    else io.stdout(flags.follow && !flags.json && !flags.prometheus ? `${formatIso(Date.now())}\n${text}\n` : text);
  };

  if (!flags.follow) {
    const par = await parallelPlan(sources, workersOf(io.env.EGRESS_STATS_WORKERS));
    let seen: ReadonlyMap<string, number>;
    if (par) {
      // Big plain log files: one worker thread per part (observe/parallel.ts), the same answer as reading in order.
      const done = { bytes: 0, lines: 0 };
      const progress = progressOf(io, flags, seams, sources, () => done);
      try {
        const r = await runReader(
          statsParallel(par.files, opts, par.workers, par.script, (bytes, lines) => {
            done.bytes += bytes;
            done.lines += lines;
          }),
        );
        builder = r.builder;
        counts = () => r.counts;
        seen = r.otherPrefixes;
      } finally {
        progress.stop();
      }
    } else {
      const progress = progressOf(io, flags, seams, sources, () => ({ bytes: reader.bytesRead, lines: reader.counts.lines }));
      try {
        await runReader(reader.run());
      } finally {
        progress.stop();
      }
      seen = reader.otherPrefixes();
    }
    await report(true);
    sayPrefixHint(io, counts(), seen, flags);
    return 0;
  }
  const timer = setInterval(() => void report(false), intervalMs);
  try {
    await runReader(reader.run());
  } finally {
    clearInterval(timer);
    stop?.dispose();
  }
  await report(true);
  sayPrefixHint(io, counts(), reader.otherPrefixes(), flags);
  return 0;
}

/**
 * Exact per-rule counters of the live ruleset, through the life cycle's
 * status reader. Needs root and an applied policy; otherwise a note says why
 * they are not shown.
 */
export async function liveCounters(io: Io, seams: StatsSeams): Promise<KernelCounters> {
  const note = (n: string): KernelCounters => ({ kind: 'note', note: n });
  if (!seams.status && !isRoot(seams)) return note('reading the live ruleset needs root');
  if (!seams.status && !existsSync(stateDirOf(io.env))) return note('nothing of egress is applied on this host');
  let st: Status;
  try {
    st = await liveStatus(io, seams);
  } catch (e) {
    return note(`the live ruleset could not be read (${(e as Error).message.split('\n')[0]})`);
  }
  if (!st.applied) return note('nothing of egress is applied on this host');
  return { kind: 'status', status: st };
}

function isRoot(seams: StatsSeams): boolean {
  const uid = seams.uid ?? process.getuid?.();
  return uid === undefined || uid === 0;
}

/** What is live, through the seam (default: kernel/status.ts readStatus). */
function liveStatus(io: Io, seams: StatsSeams): Promise<Status> {
  return (seams.status ?? (() => readStatus({ execer: seams.execer ?? realExecer() }, stateDirOf(io.env), io.now ?? new Date(), { forward: false })))();
}

/** `--sample`: append the live per-rule counters to $EGRESS_STATE_DIR/counters.jsonl (observe/counters.ts), for `egress stale`. */
async function sampleCommand(io: Io, flags: StatsFlags, seams: StatsSeams): Promise<number> {
  if (!seams.status && !isRoot(seams)) throw new CommandError('stats --sample needs root: it reads the live ruleset\'s counters; run it with sudo');
  let st: Status;
  try {
    st = await liveStatus(io, seams);
  } catch (e) {
    throw new CommandError(`cannot read the live counters: ${(e as Error).message.split('\n')[0]}`);
  }
  if (!st.applied) throw new CommandError('nothing of egress is applied on this host: no counters to sample');
  const sample = sampleOf(st, io.now ?? new Date());
  const path = await appendSample(stateDirOf(io.env), sample);
  if (flags.json) writeResult(io, 'stats', { ok: true, result: { sample: { file: path, counters: sample.counters.length } } });
  else io.stdout(`recorded ${sample.counters.length} counters in ${path}\n`);
  return 0;
}
