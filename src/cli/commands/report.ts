/**
 * `egress report [POLICY] [LOG…] [--journal|--kmsg] [--since T] [--until T]
 * [--prefix P] [--top N] [--days N] [--output FILE|-]`: one self-contained
 * HTML page (report/html.ts) of what `stats` and `stale` know: denials over
 * time with the history's changes marked, enforce's denials beside audit's
 * would-be denials, the live kernel counters, stale rules, and the policy
 * as a picture. Glue only: the reading is stats' (log-flags.ts), the
 * numbers observe/'s, the page report/html*.ts.
 */
import { resolve as resolvePath } from 'node:path';
import { writeFileAtomic } from '../../kernel/atomic.js';
import { stateDirOf } from '../../kernel/state.js';
import { StatsBuilder } from '../../observe/aggregate.js';
import { analyzeChanges, readHistory, type History } from '../../observe/changes.js';
import { readSamples, ruleActivity } from '../../observe/counters.js';
import { Deduper } from '../../observe/dedupe.js';
import type { LogEvent } from '../../logs/event.js';
import { LogReader } from '../../logs/read.js';
import { formatIso, parseSince } from '../../logs/since.js';
import { changeViews, countersView, policyPicture, rulesInOrder, staleView, timelineView, verdictView, type ReportData, type StaleView } from '../../report/html-data.js';
import { renderReportHtml } from '../../report/html.js';
import { historyNote } from '../../report/stats.js';
import { UsageError, type Io } from '../io.js';
import { contextOf, readOptionsOf, runReader, sourcesOf, type SourceFlags } from '../log-flags.js';
import { writeResult } from '../envelope.js';
import { diagnosticsJson, failed, load, type PolicyFlags } from '../shared.js';
import { liveCounters, type StatsSeams } from './stats.js';

export interface ReportFlags extends SourceFlags, PolicyFlags {
  until?: string;
  top?: string;
  days?: string;
  output?: string;
  json?: boolean;
  /** egress's version, for the page's footer (main.ts passes it). */
  version?: string;
}

/** Where the page goes without --output. */
export const DEFAULT_REPORT = 'egress-report.html';

function wholeNumber(v: string | undefined, flag: string, dflt: number, max: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new UsageError(`${flag} must be a whole number from 1 to ${max}`);
  return n;
}

export async function reportCommand(io: Io, file: string, logs: string[], flags: ReportFlags, seams: StatsSeams = {}): Promise<number> {
  const top = wholeNumber(flags.top, '--top', 10, 1000);
  const days = wholeNumber(flags.days, '--days', 30, 3650);
  const now = io.now ?? new Date();
  let until: number | undefined;
  if (flags.until !== undefined) {
    until = parseSince(flags.until, now);
    if (until === undefined) throw new UsageError(`--until ${JSON.stringify(flags.until)}: give a date (2026-11-23), a date and time (2026-11-23T09:00), or an age (30m, 2h, 7d)`);
  }
  if (flags.json && flags.output === '-') throw new UsageError('--json prints its envelope on standard output: give --output FILE for the page, not "-"');
  const loaded = await load(io, file, flags);
  if (failed(loaded)) {
    if (flags.json) writeResult(io, 'report', { ok: false, result: null, diagnostics: diagnosticsJson(loaded) });
    return 1;
  }
  const policy = loaded.policy!;
  const prefixes = flags.prefix?.length ? flags.prefix : [policy.log.prefix];
  const sources = await sourcesOf(io, logs, flags, seams);
  const opts = readOptionsOf(io, flags, seams, prefixes);
  if (until !== undefined && opts.since !== undefined && until <= opts.since) throw new UsageError('--until must be later than --since');
  const { ctx } = await contextOf(io, loaded);
  const dir = stateDirOf(io.env);
  let history: History | undefined;
  try {
    history = readHistory(dir);
  } catch {
    history = undefined; // said on the page (historyNote), as stats says it
  }
  const counters = await liveCounters(io, seams);

  // Each verdict aggregated apart (enforce's denials, audit's would-be denials); one deduper, so a connection counts once.
  const denied = new StatsBuilder();
  const wouldDeny = new StatsBuilder();
  const dedupe = new Deduper();
  let afterUntil = 0;
  const reader = new LogReader(sources, opts, (e: LogEvent) => {
    if (e.verdict === 'allowed') return;
    if (until !== undefined && e.time !== undefined && e.time >= until) {
      afterUntil++;
      return;
    }
    (e.verdict === 'denied' ? denied : wouldDeny).add(e, dedupe.isNew(e));
  });
  await runReader(reader.run());
  const { problems: _problems, ...counts } = reader.counts;
  const sD = denied.finish(reader.counts, ctx, top);
  const sW = wouldDeny.finish(reader.counts, ctx, top);

  const minutes = new Map(sD.minutes);
  for (const [m, n] of sW.minutes) minutes.set(m, (minutes.get(m) ?? 0) + n);
  const firsts = [sD.first, sW.first].filter((x): x is number => x !== undefined);
  const lasts = [sD.last, sW.last].filter((x): x is number => x !== undefined);
  const first = firsts.length ? Math.min(...firsts) : undefined;
  const last = lasts.length ? Math.max(...lasts) : undefined;
  const live = sources.some((x) => x.kind !== 'file');
  const from = opts.since ?? first;
  const to = until ?? (live ? now.getTime() : last);
  const changes = history?.entries.length ? analyzeChanges(history.entries, minutes, from !== undefined && to !== undefined && to > from ? { from, to } : undefined) : [];

  let stale: StaleView;
  try {
    const samples = await readSamples(dir);
    const rules = rulesInOrder(policy).map((r) => ({ name: r.ref.name, action: r.ref.action }));
    stale = staleView(samples, ruleActivity(rules, samples.samples, now, days), days);
  } catch (e) {
    stale = { days, file: dir, samples: 0, skipped: 0, rules: [], note: `the counter samples could not be read (${(e as Error).message.split('\n')[0]})` };
  }

  const mode = sD.connections && sW.connections ? 'mixed' : sD.mode !== 'unknown' ? sD.mode : sW.mode;
  const hn = historyNote(history);
  const tl = timelineView(sD.minutes, sW.minutes);
  const data: ReportData = {
    generated: formatIso(now.getTime()),
    version: flags.version ?? '',
    policy: { file, mode: policy.mode, default: policy.default, logPrefix: policy.log.prefix, rules: policy.allow.length + policy.deny.length },
    logs: sources.map((s) => (s.kind === 'file' ? s.name : s.kind === 'stdin' ? '-' : s.kind)),
    ...(opts.since !== undefined ? { since: formatIso(opts.since) } : {}),
    ...(until !== undefined ? { until: formatIso(until) } : {}),
    ...(first !== undefined ? { first: formatIso(first) } : {}),
    ...(last !== undefined ? { last: formatIso(last) } : {}),
    lines: { ...counts, afterUntil },
    logMode: mode,
    denied: verdictView(sD, top, 'denied'),
    wouldDeny: verdictView(sW, top, 'would-deny'),
    ...(tl ? { timeline: tl } : {}),
    changes: changeViews(changes),
    ...(hn ? { historyNote: hn } : {}),
    counters: countersView(counters),
    stale,
    picture: policyPicture(policy, counters.kind === 'status' ? counters.status.counters : undefined),
  };
  const html = renderReportHtml(data);
  const out = flags.output ?? DEFAULT_REPORT;
  if (out === '-') io.stdout(html);
  else {
    const path = resolvePath(io.cwd, out);
    writeFileAtomic(path, html, 0o644);
    if (flags.json) writeResult(io, 'report', { ok: true, result: { file: path, bytes: Buffer.byteLength(html), data }, diagnostics: diagnosticsJson(loaded) });
    else
      io.stdout(`wrote ${path} (${Math.ceil(Buffer.byteLength(html) / 1024)} KB): ${num(sD.connections)} denied and ${num(sW.connections)} would-deny connections, ${changes.length} policy changes; open it in a browser\n`);
  }
  return 0;
}

const num = (n: number) => n.toLocaleString('en-US');
