/**
 * Stats → terminal text and JSON, with the apply history's note and the live
 * kernel counters beside them. Charts first (a sparkline of denials over
 * time, bars beside the top tables): people look before they read.
 */
import { assertNever } from '../diag/diagnostic.js';
import { denies, type LoggingCounts, type RuleCounter, type Status } from '../kernel/status.js';
import { timeline, type DestinationStat, type RuleStat, type Stats, type UserStat } from '../observe/aggregate.js';
import type { ForwardSourceStat, ForwardStats } from '../observe/forward-stats.js';
import type { ChangeStat, History, HistoryEntry, RateWindow } from '../observe/changes.js';
import type { NameStat, NameStats } from '../observe/names.js';
import type { DnsReadCounts } from '../logs/dns-log.js';
import type { ReadCounts } from '../logs/event.js';
import { formatDuration, formatIso } from '../logs/since.js';
import { fitColumns } from './table.js';

const SPARK = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/** One character per value: blank for zero, else one of eight heights, the peak full. */
export function sparkline(counts: readonly number[]): string {
  const peak = Math.max(0, ...counts);
  return counts.map((n) => (n <= 0 ? ' ' : SPARK[Math.min(7, Math.max(0, Math.ceil((n / peak) * 8) - 1))]!)).join('');
}

/** A bar of up to `width` blocks, proportional to n/max (at least one block when n > 0). */
export function bar(n: number, max: number, width = 16): string {
  if (n <= 0 || max <= 0) return '';
  return '█'.repeat(Math.max(1, Math.round((n / max) * width)));
}

const num = (n: number) => n.toLocaleString('en-US');

/** stats' tables: indented by two, no rule under the header, numbers right-aligned; cut to `width` (a terminal's) when given. */
function table(headers: string[], rows: string[][], right: number[] = [], width?: number): string {
  const fit = fitColumns(headers, rows, { right, indent: 2, ...(width !== undefined ? { width } : {}) });
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : right.includes(i) ? c.padStart(fit.widths[i]!) : c.padEnd(fit.widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(fit.headers), ...fit.rows.map(line)].map((l) => `  ${l}`).join('\n') + '\n';
}

export function destinationText(d: Pick<DestinationStat, 'dst' | 'family'>): string {
  return d.family === 'ipv6' ? `[${d.dst}]` : d.dst;
}

export function serviceText(d: Pick<DestinationStat, 'proto' | 'port' | 'icmp' | 'protoNum'>): string {
  if (d.proto === 'icmp') return `icmp ${d.icmp ?? ''}`.trim();
  if (d.proto === 'other') return `proto ${d.protoNum}`;
  return d.port !== undefined ? `${d.proto}/${d.port}` : d.proto;
}

function userText(u: { uid?: number; user?: string; forwarded?: true }): string {
  if (u.forwarded) return '(forwarded: containers, VMs)';
  if (u.uid === undefined) return '(no uid logged)';
  return u.user !== undefined ? `${u.user} (${u.uid})` : `uid ${u.uid}`;
}

export function countsLine(c: ReadCounts): string {
  const parts = [`${num(c.lines)} lines read`, `${num(c.events)} denial lines`];
  if (c.other) parts.push(`${num(c.other)} from other LOG rules (not counted; --prefix to include)`);
  if (c.inbound) parts.push(`${num(c.inbound)} inbound (not egress)`);
  if (c.beforeSince) parts.push(`${num(c.beforeSince)} before --since`);
  if (c.malformed) parts.push(`${num(c.malformed)} malformed (skipped)`);
  if (c.lost) parts.push(`${num(c.lost)} kernel log overruns (records lost)`);
  if (c.rotations) parts.push(`${num(c.rotations)} log rotations followed`);
  return parts.join(', ');
}

/** The live ruleset's exact per-rule counters (an applied policy's status), or why they are not shown. */
export type KernelCounters = { kind: 'status'; status: Status } | { kind: 'note'; note: string };

/** What the "policy changes" section says about the apply history itself, if anything (`undefined`: it could not be read). */
export function historyNote(h: History | undefined): string | undefined {
  if (!h) return 'the apply history could not be read';
  if (h.missing) return `no apply history (${h.path}): nothing applied with egress on this host yet`;
  if (!h.entries.length) return `the apply history (${h.path}) has no entries${h.skipped ? ` (${h.skipped} unreadable lines)` : ''}`;
  return h.skipped ? `${h.skipped} unreadable lines in ${h.path} skipped` : undefined;
}

/** The "kernel counters" lines: what denied (deny rules, and the default unless it accepts), packets and bytes. */
function counterLines(c: KernelCounters): string[] {
  switch (c.kind) {
    case 'note':
      return [`not shown: ${c.note}`];
    case 'status': {
      const st = c.status;
      // Forwarded traffic's counters (scope forward) too: its default, and the unlisted flows unless they pass uncounted in logs (accept).
      const denying = st.counters.filter((x) => denies(x, st.default));
      const label = (x: RuleCounter) => (x.action === 'default' ? `(default ${x.rule})` : x.action === 'unlisted' ? `(unlisted: ${x.rule})` : x.rule) + (x.scope === 'forward' ? ' forwarded' : '');
      const lines = denying.map((x) => `${label(x).padEnd(24)} ${(x.family ?? '').padEnd(5)} ${x.packets.toLocaleString('en-US').padStart(12)} packets ${x.bytes.toLocaleString('en-US').padStart(14)} bytes`);
      if (!lines.length) lines.push('no deny rule or denying default in the live ruleset');
      const lg = st.logging;
      if (lg)
        lines.push(
          lg.notLogged
            ? `log: ${num(lg.logged)} of ${num(lg.denials)} denials logged; ${num(lg.notLogged)} NOT logged (rate limit ${lg.limit}): no log reader sees those flows; raise log.rate (audit's default is 100/second)`
            : `log: every one of ${num(lg.denials)} denials logged (rate limit ${lg.limit})`,
        );
      return [`${st.backend}, ${st.mode} mode, policy ${st.policyFile} (${(st.policyHash ?? '').replace(/^sha256:/, '').slice(0, 12)})`, ...lines];
    }
    default:
      return assertNever(c);
  }
}

/** `kernelCounters` in stats --json: every rule's counter (not only what denied) and the log lines against denials; or, instead, why they are not shown. */
export interface KernelCountersJson {
  counters?: RuleCounter[];
  logging?: LoggingCounts;
  note?: string;
}

/** The JSON form of the counters: every rule's counter (not only what denied), or the note. */
function countersJson(c: KernelCounters): KernelCountersJson {
  return c.kind === 'status' ? { counters: c.status.counters, ...(c.status.logging ? { logging: c.status.logging } : {}) } : { note: c.note };
}

export interface RenderOptions {
  top?: number;
  changes?: ChangeStat[];
  historyNote?: string;
  counters?: KernelCounters;
  /** What the numbers are: "denied" for stats, "the candidate would deny" for replay. */
  title?: string;
  /** The DNS forwarder's names (stats, when its log was read). */
  names?: NameStats;
  /** The terminal's width: tables are cut to fit it. */
  width?: number;
}

function dnsCountsLine(c: DnsReadCounts): string {
  const parts = [`${num(c.lines)} lines of ${c.files.join(', ')}`, `${num(c.records)} answers and refusals`];
  if (c.beforeSince) parts.push(`${num(c.beforeSince)} before --since`);
  if (c.malformed) parts.push(`${num(c.malformed)} malformed (skipped)`);
  return parts.join(', ');
}

function askers(n: NameStat): string {
  const shown = n.users.slice(0, 2).map((u) => u.user ?? String(u.uid));
  if (n.users.length > 2) shown.push(`+${n.users.length - 2}`);
  if (n.unknownUser && !n.users.length) shown.push('?');
  return shown.join(', ');
}

/** The "names" section: the names the DNS forwarder answered most, and those it refused. */
export function nameLines(n: NameStats, top: number, width?: number): string[] {
  const out = ['', `names asked through the DNS forwarder (top ${Math.min(top, n.top.length)} of ${num(n.names)}; ${num(n.answers)} answers)`, `  ${dnsCountsLine(n.counts)}`];
  for (const p of n.counts.problems.slice(0, 3)) out.push(`  malformed: ${p.where}:${p.line}: ${p.reason}`);
  const rows = n.top.slice(0, top);
  const max = rows[0]?.answers ?? 0;
  if (rows.length)
    out.push(
      table(
        ['answers', '', 'name', 'addresses', 'users', 'published by'],
        rows.map((x) => [num(x.answers), bar(x.answers, max, 12), x.name, num(x.addresses), askers(x), x.published ? x.rules.join(', ') : '(forwarded)']),
        [0, 3],
        width,
      ).trimEnd(),
    );
  if (n.refused.length) {
    out.push('', `names refused (top ${Math.min(top, n.refused.length)} of ${num(n.refusedNames)}; ${num(n.refusals)} queries)`);
    out.push(table(['queries', 'name', 'users', 'rule'], n.refused.slice(0, top).map((x) => [num(x.refused), x.name, askers(x), x.rules.join(', ')]), [0], width).trimEnd());
  }
  return out;
}

export function renderStats(s: Stats, o: RenderOptions = {}): string {
  const top = o.top ?? 10;
  const out: string[] = [];
  const span = s.first !== undefined && s.last !== undefined ? ` from ${formatIso(s.first)} to ${formatIso(s.last)} (${formatDuration(s.last - s.first)})` : '';
  const what = o.title ?? (s.mode === 'audit' ? 'connections audit mode would have denied (logged, not blocked)' : 'denied connections');
  out.push(`${num(s.connections)} ${what}${span}`);
  if (s.mode === 'mixed') out.push(`  ${num(s.denied)} denied (enforce) and ${num(s.wouldDeny)} would-be-denied (audit): the logs span a mode change`);
  const passed = s.forwarded?.unlisted.passed ?? 0;
  if (passed && s.mode !== 'audit') out.push(`  ${num(passed)} of them forwarded from no source and let through (forward.unlisted: warn): logged, not blocked`);
  out.push(`  ${num(s.packets)} log lines; retransmissions within 60 s counted once`);
  out.push(`  ${countsLine(s.counts)}`);
  for (const p of s.counts.problems.slice(0, 3)) out.push(`  malformed: ${p.where}:${p.line}: ${p.reason}`);
  if (!s.connections) return [...out, ...(o.names ? nameLines(o.names, top, o.width) : [])].join('\n') + '\n';

  const tl = timeline(s.minutes);
  if (tl && tl.counts.length > 1) {
    const peak = Math.max(...tl.counts);
    out.push('', `over time (${tl.bucketMinutes >= 60 ? `${tl.bucketMinutes / 60} h` : `${tl.bucketMinutes} min`} per column, peak ${num(peak)})`);
    out.push(`  ${sparkline(tl.counts)}`);
    const endMs = tl.start + (tl.counts.length - 1) * tl.bucketMinutes * 60_000;
    const left = formatIso(tl.start).slice(0, 16);
    const right = formatIso(endMs).slice(0, 16);
    out.push(`  ${left}${' '.repeat(Math.max(1, tl.counts.length - left.length - right.length))}${tl.counts.length >= left.length + right.length + 1 ? right : `→ ${right}`}`);
  }

  const dests = s.destinations.slice(0, top);
  const maxD = dests[0]?.connections ?? 0;
  out.push('', `top destinations (${Math.min(top, s.destinations.length)} of ${num(s.destinationCount)})`);
  out.push(
    table(
      ['connections', '', 'destination', 'service', 'host', 'users', 'rule'],
      dests.map((d) => [
        num(d.connections),
        bar(d.connections, maxD, 12),
        destinationText(d),
        serviceText(d),
        d.host ?? '',
        d.users
          .slice(0, 2)
          .map((u) => (u.forwarded ? 'forwarded' : u.uid === undefined ? '?' : u.user ?? String(u.uid)))
          .join(', ') + (d.users.length > 2 ? ` +${d.users.length - 2}` : ''),
        d.rules.map((r) => (r === '-' ? '(default)' : r || '(untagged)')).join(', '),
      ]),
      [0],
      o.width,
    ).trimEnd(),
  );

  const users = s.users.slice(0, top);
  const maxU = users[0]?.connections ?? 0;
  out.push('', 'by user');
  out.push(table(['connections', '', 'user'], users.map((u) => [num(u.connections), bar(u.connections, maxU, 12), userText(u)]), [0], o.width).trimEnd());

  out.push('', 'by rule');
  out.push(
    table(
      ['connections', 'log lines', 'rule'],
      s.rules.slice(0, top).map((r) => [
        num(r.connections),
        num(r.packets),
        (r.unlisted ? `(unlisted: from no forward source, ${r.verdict === 'denied' ? 'denied' : 'let through'})` : (r.isDefault ? '(default)' : r.rule ?? `(untagged: prefix "${(r.prefix ?? '').trimEnd()}")`) + (r.scope === 'forward' ? ' (forwarded)' : '')) +
          (r.logged && r.rule && r.logged !== r.rule ? ` (logged as ${r.logged})` : '') +
          (s.mode === 'mixed' ? ` [${r.verdict}]` : ''),
      ]),
      [0, 1],
      o.width,
    ).trimEnd(),
  );

  if (s.forwarded) out.push('', ...forwardedLines(s.forwarded, top, o.width));

  if (o.changes || o.historyNote) {
    out.push('', 'policy changes (denials per hour, the hour before → after)');
    if (o.historyNote) out.push(`  ${o.historyNote}`);
    if (o.changes?.length)
      out.push(
        table(
          ['time', 'change', 'policy', 'before', 'after', ''],
          o.changes.map((c) => [
            formatIso(c.entry.time),
            `${c.entry.action}${c.entry.outcome === 'pending' ? ' (pending)' : ''}${c.entry.mode ? ` ${c.entry.mode}` : ''}`,
            (c.entry.policyHash ?? '').replace(/^sha256:/, '').slice(0, 12),
            c.before ? rate(c.before.perHour) : '-',
            c.after ? rate(c.after.perHour) : '-',
            c.jump ? '<< denials jumped' : c.note ?? '',
          ]),
          [3, 4],
          o.width,
        ).trimEnd(),
      );
  }
  if (o.names) out.push(...nameLines(o.names, top, o.width));
  if (o.counters) out.push('', 'kernel counters (exact, since the ruleset was loaded)', ...counterLines(o.counters).map((l) => `  ${l}`));
  return out.join('\n') + '\n';
}

/** The "forwarded" section: forwarded connections by source (with a policy) or by input interface, and those from no source. */
export function forwardedLines(f: ForwardStats, top: number, width?: number): string[] {
  const withSources = f.sources.some((x) => x.sources !== undefined);
  const un = f.unlisted.denied + f.unlisted.passed;
  const head = `forwarded (containers, VMs): ${num(f.connections)} connection${f.connections === 1 ? '' : 's'}${un ? `, ${num(un)} logged as from no source (${num(f.unlisted.denied)} denied, ${num(f.unlisted.passed)} let through)` : ''}`;
  const rows = f.sources.slice(0, top);
  const max = rows[0]?.connections ?? 0;
  const addrs = (x: ForwardSourceStat) => x.addresses.slice(0, 3).join(', ') + (x.addressCount > 3 ? ` +${x.addressCount - 3}` : '');
  const headers = ['connections', '', ...(withSources ? ['source'] : []), 'interfaces', 'addresses'];
  return [
    `${head}${withSources ? '' : ' (by input interface: give --policy to name the sources)'}`,
    table(
      headers,
      rows.map((x) => [num(x.connections), bar(x.connections, max, 12), ...(withSources ? [x.sources!.length ? x.sources!.join(', ') : '(no source)'] : []), x.interfaces.join(', '), addrs(x)]),
      [0],
      width,
    ).trimEnd(),
  ];
}

function rate(perHour: number): string {
  return perHour >= 10 ? String(Math.round(perHour)) : perHour.toFixed(1);
}

/** Times (ms in Stats) become ISO 8601 UTC strings in --json; absent when unknown. */
export interface IsoSpan {
  first?: string;
  last?: string;
}

/** A destination in stats --json: DestinationStat with its first and last connection as ISO 8601 UTC. */
export interface DestinationJson extends Omit<DestinationStat, 'first' | 'last'>, IsoSpan {}

/** A forward source's row in stats --json: ForwardSourceStat with ISO 8601 UTC times. */
export interface ForwardSourceJson extends Omit<ForwardSourceStat, 'first' | 'last'>, IsoSpan {}

/** `forwarded` in stats --json: ForwardStats with its top sources. */
export interface ForwardStatsJson extends Omit<ForwardStats, 'sources'> {
  sources: ForwardSourceJson[];
}

/** A name in the names section of --json: NameStat with ISO 8601 UTC times. */
export interface NameStatJson extends Omit<NameStat, 'first' | 'last'>, IsoSpan {}

/** The denials over time in stats --json: counts per bucket of `bucketMinutes`, the first starting at `start` (ISO 8601 UTC). */
export interface TimelineJson {
  bucketMinutes: number;
  start: string;
  counts: number[];
}

/** A rate window around a policy change in stats --json: RateWindow with `from` and `to` as ISO 8601 UTC. */
export interface RateWindowJson extends Omit<RateWindow, 'from' | 'to'> {
  from: string;
  to: string;
}

/** A policy change (an apply history entry) and the denial rates around it, in stats --json. */
export interface ChangeJson {
  /** ISO 8601 UTC. */
  time: string;
  action: HistoryEntry['action'];
  outcome: HistoryEntry['outcome'];
  policyHash?: string;
  mode?: string;
  user?: string;
  before?: RateWindowJson;
  after?: RateWindowJson;
  jump: boolean;
  note?: string;
}

/** `stats --json` (and replay's `stats`): times as ISO 8601 UTC, counts exact, lists capped at the top N. */
export interface StatsJson {
  mode: Stats['mode'];
  connections: number;
  packets: number;
  denied: number;
  wouldDeny: number;
  first?: string;
  last?: string;
  prefixes: string[];
  /** What was read: lines, events, and the rest (ReadCounts). */
  lines: ReadCounts;
  destinations: DestinationJson[];
  destinationCount: number;
  users: UserStat[];
  rules: RuleStat[];
  /** Absent when no connection has a time. */
  timeline?: TimelineJson;
  /** Present when the apply history was asked for. */
  changes?: ChangeJson[];
  kernelCounters?: KernelCountersJson;
  names?: NamesJson;
  forwarded?: ForwardStatsJson;
}

/** What statsJson adds beside the Stats: the top N (default 20), the policy changes, the kernel counters, the names. */
export interface StatsJsonOptions {
  top?: number;
  changes?: ChangeStat[];
  counters?: KernelCounters;
  names?: NameStats;
}

/** The JSON form: times as ISO 8601 UTC, the top N of each table (counts are exact, lists capped); `kernelCounters` when given. */
export function statsJson(s: Stats, o: StatsJsonOptions = {}): StatsJson {
  const top = o.top ?? 20;
  const t = (ms: number | undefined) => (ms === undefined ? undefined : formatIso(ms));
  const tl = timeline(s.minutes);
  return {
    mode: s.mode,
    connections: s.connections,
    packets: s.packets,
    denied: s.denied,
    wouldDeny: s.wouldDeny,
    first: t(s.first),
    last: t(s.last),
    prefixes: s.prefixes,
    lines: { ...s.counts },
    destinations: s.destinations.slice(0, top).map((d) => ({ ...d, first: t(d.first), last: t(d.last) })),
    destinationCount: s.destinationCount,
    users: s.users.slice(0, top),
    rules: s.rules,
    timeline: tl ? { bucketMinutes: tl.bucketMinutes, start: formatIso(tl.start), counts: tl.counts } : undefined,
    changes: o.changes?.map((c) => ({
      time: formatIso(c.entry.time),
      action: c.entry.action,
      outcome: c.entry.outcome,
      policyHash: c.entry.policyHash,
      mode: c.entry.mode,
      user: c.entry.user,
      before: c.before && { ...c.before, from: formatIso(c.before.from), to: formatIso(c.before.to) },
      after: c.after && { ...c.after, from: formatIso(c.after.from), to: formatIso(c.after.to) },
      jump: c.jump,
      note: c.note,
    })),
    ...(o.counters ? { kernelCounters: countersJson(o.counters) } : {}),
    ...(o.names ? { names: namesJson(o.names, top) } : {}),
    ...(s.forwarded ? { forwarded: { ...s.forwarded, sources: s.forwarded.sources.slice(0, top).map((x) => ({ ...x, first: t(x.first), last: t(x.last) })) } } : {}),
  };
}

/** The names section in --json: the forwarder log's tally (`lines`), the names answered and refused (counts exact, lists the top N). */
export interface NamesJson {
  lines: DnsReadCounts;
  names: number;
  answers: number;
  top: NameStatJson[];
  refusedNames: number;
  refusals: number;
  refused: NameStatJson[];
}

/** The "names" section as JSON: the tally of the forwarder log, the top names answered and refused (times ISO 8601 UTC). */
export function namesJson(n: NameStats, top: number): NamesJson {
  const one = (x: NameStat): NameStatJson => ({ ...x, first: x.first === undefined ? undefined : formatIso(x.first), last: x.last === undefined ? undefined : formatIso(x.last) });
  return {
    lines: n.counts,
    names: n.names,
    answers: n.answers,
    top: n.top.slice(0, top).map(one),
    refusedNames: n.refusedNames,
    refusals: n.refusals,
    refused: n.refused.slice(0, top).map(one),
  };
}
