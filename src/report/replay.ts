/**
 * What `replay` prints: how many of the recorded connections the candidate
 * policy would deny and admit (and by which rules), then what it would deny
 * as `stats` shows it; or both as `--json`. Pure.
 */
import type { Stats } from '../observe/aggregate.js';
import type { ReplaySummary } from '../observe/replay.js';
import { renderStats, statsJson, type StatsJson } from './stats.js';

export function replayText(file: string, mode: string, s: ReplaySummary, stats: Stats, top: number): string {
  const title = mode === 'audit' ? 'connections this policy would deny (it is in audit mode: logged, not blocked)' : 'connections this policy would deny';
  return summaryText(file, mode, s) + (stats.connections ? '\n' + renderStats(stats, { top, title }) : '');
}

/** `replay --json`: the candidate policy and its mode, how it decides the logged connections, and what it would deny as `stats --json` gives it. */
export interface ReplayJson {
  policy: string;
  mode: string;
  summary: ReplaySummary;
  stats: StatsJson;
}

export function replayJson(file: string, mode: string, s: ReplaySummary, stats: Stats, top: number): ReplayJson {
  return { policy: file, mode, summary: s, stats: statsJson(stats, { top }) };
}

function summaryText(file: string, mode: string, s: ReplaySummary): string {
  const lines = [`replayed ${s.connections.toLocaleString('en-US')} logged connections through ${file} (${mode} mode):`];
  lines.push(`  ${s.denied.toLocaleString('en-US')} would be denied, ${s.admitted.toLocaleString('en-US')} would be admitted`);
  for (const a of s.admittedBy.slice(0, 10)) lines.push(`    ${a.connections.toLocaleString('en-US').padStart(8)}  admitted by ${a.rule.startsWith('builtin:') || a.rule.startsWith('(') ? a.rule : `allow ${a.rule}`}`);
  if (s.unreadable) lines.push(`  ${s.unreadable} events could not be replayed`);
  if (!s.denied) lines.push('  nothing would be denied: this policy admits everything in these logs');
  return lines.join('\n') + '\n';
}
