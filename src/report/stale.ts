/**
 * What `stale` prints: how far back the counter samples reach, the rules
 * without hits in the window, and every rule's hits and status; or that as
 * `--json`. Pure.
 */
import type { CounterSample, RuleActivity } from '../observe/counters.js';
import { formatIso } from '../logs/since.js';
import { table } from './table.js';

/** The samples `readSamples` found. */
interface Samples {
  samples: CounterSample[];
  skipped: number;
  path: string;
}

export function staleText(s: Samples, activity: readonly RuleActivity[], days: number, width?: number): string {
  const out: string[] = [];
  if (!s.samples.length) {
    out.push(`no counter samples in ${s.path}: record them with "egress stats --sample" (e.g. hourly from cron or a systemd timer), then ask again after ${days} days`);
  } else {
    out.push(`${s.samples.length} counter samples from ${formatIso(Date.parse(s.samples[0]!.time))} to ${formatIso(Date.parse(s.samples.at(-1)!.time))}${s.skipped ? ` (${s.skipped} unreadable lines skipped)` : ''}`);
  }
  const stale = activity.filter((a) => a.status === 'stale');
  out.push(stale.length ? `${stale.length} rule${stale.length === 1 ? '' : 's'} with no hits in ${days} days: ${stale.map((a) => `"${a.rule}"`).join(', ')}` : `no rule is known to be without hits in ${days} days`);
  out.push('');
  out.push(
    table(
      ['rule', 'action', `hits (${days} d)`, 'last hit', 'status'],
      activity.map((a) => [a.rule, a.action, String(a.hits), a.lastHit ? formatIso(Date.parse(a.lastHit)) : '-', a.status === 'unknown' ? `unknown: ${a.note}` : a.status]),
      width !== undefined ? { width } : {},
    ).trimEnd(),
  );
  return out.join('\n') + '\n';
}

/** `stale --json`: the window in days, the counter samples read (how many, from which file, lines skipped), and every rule's hits and status. */
export interface StaleJson {
  policy: string;
  days: number;
  samples: number;
  samplesFile: string;
  skipped: number;
  rules: readonly RuleActivity[];
}

export function staleJson(policy: string, s: Samples, activity: readonly RuleActivity[], days: number): StaleJson {
  return { policy, days, samples: s.samples.length, samplesFile: s.path, skipped: s.skipped, rules: activity };
}
