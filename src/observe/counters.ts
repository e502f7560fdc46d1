/**
 * Counter samples over time, for `egress stale`: which rules have had no
 * hits for N days. The kernel's per-rule counters only say "so many packets
 * since the rules were loaded"; a rule's recent hits are the difference
 * between two samples.
 *
 * Samples are appended by `egress stats --sample` (run it from cron or a
 * systemd timer, e.g. hourly) to `$EGRESS_STATE_DIR/counters.jsonl`, one
 * JSON object per line:
 *
 *   { "time": "2026-11-23T10:00:00.000Z", "policyHash": "sha256:…",
 *     "backend": "nft", "counters": [ { "rule": "dns", "action": "allow",
 *     "family": "ipv4", "packets": 123, "bytes": 4567 }, … ] }
 *
 * Counters restart from zero when the ruleset is reloaded (apply, rollback):
 * a counter that went down between two samples was reset, and its new value
 * is all hits since.
 *
 * The file does not grow forever: it keeps the samples of the last
 * COUNTERS_KEEP_DAYS days, and the newest one before them, so that a
 * `stale --days 90` still reaches back to the start of its window; and at
 * most COUNTERS_MAX_SAMPLES samples (hourly, 416 days: the days limit
 * governs). An append rewrites the file with what is kept (kernel/jsonl.ts:
 * temporary file and rename) once it holds a day more, or a tenth more
 * samples, than that — not at every append — under the state lock, which
 * the append takes. A window longer than what is kept answers `unknown`,
 * never `stale`.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { appendLine, rewriteLines, type RewriteSeam } from '../kernel/jsonl.js';
import { acquireLockWaiting } from '../kernel/lock.js';
import type { Status } from '../kernel/status.js';

export const COUNTERS_FILE = 'counters.jsonl';

export interface SampledCounter {
  rule: string;
  action: 'allow' | 'deny' | 'builtin' | 'default' | 'unlisted';
  family?: 'ipv4' | 'ipv6';
  /** Forwarded traffic's (SPEC §6); a rule's hits are its host and forward counters together. */
  scope?: 'forward';
  packets: number;
  bytes: number;
}

export interface CounterSample {
  time: string;
  policyHash?: string;
  backend?: string;
  counters: SampledCounter[];
}

/** The live per-rule counters as one sample, taken at `time`. */
export function sampleOf(st: Status, time: Date): CounterSample {
  return {
    time: time.toISOString(),
    ...(st.policyHash ? { policyHash: st.policyHash } : {}),
    ...(st.backend ? { backend: st.backend } : {}),
    counters: st.counters.map((c) => ({ rule: c.rule, action: c.action, ...(c.family ? { family: c.family } : {}), ...(c.scope ? { scope: c.scope } : {}), packets: c.packets, bytes: c.bytes })),
  };
}

/** Days of samples kept (and the newest sample before them). `stale`'s default window is 30. */
export const COUNTERS_KEEP_DAYS = 90;
/** The most samples kept. */
export const COUNTERS_MAX_SAMPLES = 10_000;
const DAY_MS = 86_400_000;

/** Append a sample under the state lock; rewrite the file without what is past the limits when it is well past them (see above). */
export async function appendSample(dir: string, s: CounterSample, seam?: RewriteSeam): Promise<string> {
  const path = join(dir, COUNTERS_FILE);
  const line = JSON.stringify(s);
  const lock = await acquireLockWaiting(dir);
  try {
    let old = '';
    try {
      old = await readFile(path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    const lines = [...old.split('\n'), line].filter((l) => l.trim());
    const now = Date.parse(s.time);
    const valid = lines.filter((l) => parseSamples(l).samples.length);
    const loose = keptSamples(valid, now, COUNTERS_KEEP_DAYS + 1, Math.floor(COUNTERS_MAX_SAMPLES * 1.1));
    if (loose.length === valid.length && valid.length === lines.length) appendLine(path, line, 0o644);
    else rewriteLines(path, keptSamples(valid, now, COUNTERS_KEEP_DAYS, COUNTERS_MAX_SAMPLES), 0o644, seam);
  } finally {
    lock.release();
  }
  return path;
}

/**
 * Of sample lines, those kept at `now`, oldest first: the ones of the last
 * `days` days and the newest one before them (the start of a `days`-long
 * window), then at most the newest `max`.
 */
export function keptSamples(lines: readonly string[], now: number, days: number, max: number): string[] {
  const timed = lines.map((line) => ({ line, t: Date.parse((JSON.parse(line) as CounterSample).time) })).sort((a, b) => a.t - b.t);
  const cutoff = now - days * DAY_MS;
  const first = timed.findIndex((x) => x.t >= cutoff);
  const from = first === -1 ? timed.length - 1 : Math.max(0, first - 1);
  return timed.slice(Math.max(from, timed.length - max)).map((x) => x.line);
}

/** A counter's value: a whole number of at least 0 (1e400 parses as Infinity, and a hand edit may hold anything). */
const isCount = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function isCounter(v: unknown): v is SampledCounter {
  const o = v as Record<string, unknown>;
  return !!o && typeof o === 'object' && typeof o.rule === 'string' && typeof o.action === 'string' && isCount(o.packets) && isCount(o.bytes);
}

/** Tolerant: lines that are not samples (a torn last line, hand edits) are skipped and counted. */
export function parseSamples(text: string): { samples: CounterSample[]; skipped: number } {
  const samples: CounterSample[] = [];
  let skipped = 0;
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const v = JSON.parse(line) as Partial<CounterSample>;
      if (typeof v.time !== 'string' || !Number.isFinite(Date.parse(v.time)) || !Array.isArray(v.counters) || !v.counters.every(isCounter)) {
        skipped++;
        continue;
      }
      samples.push(v as CounterSample);
    } catch {
      skipped++;
    }
  }
  samples.sort((a, b) => Date.parse(a.time) - Date.parse(b.time));
  return { samples, skipped };
}

export async function readSamples(dir: string): Promise<{ samples: CounterSample[]; skipped: number; path: string; missing: boolean }> {
  const path = join(dir, COUNTERS_FILE);
  try {
    return { ...parseSamples(await readFile(path, 'utf8')), path, missing: false };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { samples: [], skipped: 0, path, missing: true };
    throw e;
  }
}

export interface RuleActivity {
  rule: string;
  action: 'allow' | 'deny';
  /** stale: no hits in the window; used: hits in it; unknown: the samples do not cover the window. */
  status: 'stale' | 'used' | 'unknown';
  /** Packets counted within the window. */
  hits: number;
  /** The last sample interval in which the rule had hits (its end). */
  lastHit?: string;
  /** Why the answer is unknown. */
  note?: string;
}

/**
 * Per policy rule: hits within [now - days, now], summed over both families
 * and both scopes (a rule `from: [host, docker]` has host counters and
 * forward counters, `scope: 'forward'`; it is used when either moves). The
 * forward default, unlisted and builtin counters are no rule's. A rule is
 * `stale` only when the samples reach back to the start of the window
 * (otherwise it is `unknown`: too little history to say).
 */
export function ruleActivity(rules: readonly { name: string; action: 'allow' | 'deny' }[], samples: readonly CounterSample[], now: Date, days: number): RuleActivity[] {
  const from = now.getTime() - days * 86_400_000;
  // Per rule, a series of (time, packets summed over families and scopes).
  const series = new Map<string, { t: number; packets: number }[]>();
  for (const s of samples) {
    const t = Date.parse(s.time);
    const per = new Map<string, number>();
    for (const c of s.counters) if (c.action === 'allow' || c.action === 'deny') per.set(c.rule, (per.get(c.rule) ?? 0) + c.packets);
    for (const [rule, packets] of per) {
      const xs = series.get(rule) ?? [];
      xs.push({ t, packets });
      series.set(rule, xs);
    }
  }
  return rules.map((r) => {
    const xs = series.get(r.name) ?? [];
    let hits = 0;
    let lastHit: number | undefined;
    for (let i = 1; i < xs.length; i++) {
      const a = xs[i - 1]!;
      const b = xs[i]!;
      const d = b.packets >= a.packets ? b.packets - a.packets : b.packets; // went down: reloaded, counted from zero
      if (d > 0) lastHit = b.t;
      if (b.t > from && d > 0) hits += d;
    }
    const out: RuleActivity = { rule: r.name, action: r.action, status: 'unknown', hits };
    if (lastHit !== undefined) out.lastHit = new Date(lastHit).toISOString();
    if (hits > 0) out.status = 'used';
    else if (xs.length >= 2 && xs[0]!.t <= from) out.status = 'stale';
    else out.note = xs.length < 2 ? 'fewer than two samples of this rule' : `samples only reach back to ${new Date(xs[0]!.t).toISOString()}`;
    return out;
  });
}
