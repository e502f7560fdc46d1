/**
 * `egress stale POLICY [--days N]`: rules with no hits in N days (default
 * 30), from the counter samples `egress stats --sample` records in
 * `$EGRESS_STATE_DIR/counters.jsonl` (see observe/counters.ts). A rule the
 * samples do not cover far enough back is "unknown", never "stale".
 */
import { readSamples, ruleActivity } from '../../observe/counters.js';
import { stateDirOf } from '../../kernel/state.js';
import { formatLocal } from '../../observe/since.js';
import { UsageError, type Io } from '../io.js';
import { diagnosticsJson, failed, load, writeJson, type PolicyFlags } from '../shared.js';
import { table } from '../../report/table.js';

export interface StaleFlags extends PolicyFlags {
  days?: string;
}

export async function staleCommand(io: Io, file: string, flags: StaleFlags): Promise<number> {
  const days = flags.days === undefined ? 30 : Number(flags.days);
  if (!Number.isInteger(days) || days < 1 || days > 3650) throw new UsageError('--days must be a whole number from 1 to 3650');
  const l = await load(io, file, flags);
  if (failed(l)) {
    if (flags.json) writeJson(io, { ok: false, diagnostics: diagnosticsJson(l) });
    return 1;
  }
  const p = l.policy!;
  const rules = [...p.allow.map((r) => ({ name: r.ref.name, action: 'allow' as const })), ...p.deny.map((r) => ({ name: r.ref.name, action: 'deny' as const }))].sort((a, b) => a.name.localeCompare(b.name));
  const now = io.now ?? new Date();
  const s = await readSamples(stateDirOf(io.env));
  const activity = ruleActivity(rules, s.samples, now, days);
  if (flags.json) {
    writeJson(io, { policy: file, days, samples: s.samples.length, samplesFile: s.path, skipped: s.skipped, rules: activity });
    return 0;
  }
  const out: string[] = [];
  if (!s.samples.length) {
    out.push(`no counter samples in ${s.path}: record them with "egress stats --sample" (e.g. hourly from cron or a systemd timer), then ask again after ${days} days`);
  } else {
    out.push(`${s.samples.length} counter samples from ${formatLocal(Date.parse(s.samples[0]!.time))} to ${formatLocal(Date.parse(s.samples.at(-1)!.time))}${s.skipped ? ` (${s.skipped} unreadable lines skipped)` : ''}`);
  }
  const stale = activity.filter((a) => a.status === 'stale');
  out.push(stale.length ? `${stale.length} rule${stale.length === 1 ? '' : 's'} with no hits in ${days} days: ${stale.map((a) => `"${a.rule}"`).join(', ')}` : `no rule is known to be without hits in ${days} days`);
  out.push('');
  out.push(
    table(
      ['rule', 'action', `hits (${days} d)`, 'last hit', 'status'],
      activity.map((a) => [a.rule, a.action, String(a.hits), a.lastHit ? formatLocal(Date.parse(a.lastHit)) : '-', a.status === 'unknown' ? `unknown: ${a.note}` : a.status]),
    ).trimEnd(),
  );
  io.stdout(out.join('\n') + '\n');
  return 0;
}
