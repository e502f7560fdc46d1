/**
 * `egress stale POLICY [--days N]`: rules with no hits in N days (default
 * 30), from the counter samples `egress stats --sample` records in
 * `$EGRESS_STATE_DIR/counters.jsonl` (see observe/counters.ts). A rule the
 * samples do not cover far enough back is "unknown", never "stale".
 */
import { stateDirOf } from '../../kernel/state.js';
import { readSamples, ruleActivity } from '../../observe/counters.js';
import { staleJson, staleText } from '../../report/stale.js';
import { UsageError, type Io } from '../io.js';
import { writeResult } from '../envelope.js';
import { diagnosticsJson, failed, load, type PolicyFlags } from '../shared.js';

export interface StaleFlags extends PolicyFlags {
  days?: string;
}

export async function staleCommand(io: Io, file: string, flags: StaleFlags): Promise<number> {
  const days = flags.days === undefined ? 30 : Number(flags.days);
  if (!Number.isInteger(days) || days < 1 || days > 3650) throw new UsageError('--days must be a whole number from 1 to 3650');
  const l = await load(io, file, flags);
  if (failed(l)) {
    if (flags.json) writeResult(io, 'stale', { ok: false, result: null, diagnostics: diagnosticsJson(l) });
    return 1;
  }
  const p = l.policy!;
  const rules = [...p.allow.map((r) => ({ name: r.ref.name, action: 'allow' as const })), ...p.deny.map((r) => ({ name: r.ref.name, action: 'deny' as const }))].sort((a, b) => a.name.localeCompare(b.name));
  const now = io.now ?? new Date();
  const s = await readSamples(stateDirOf(io.env));
  const activity = ruleActivity(rules, s.samples, now, days);
  if (flags.json) writeResult(io, 'stale', { ok: true, result: staleJson(file, s, activity, days), diagnostics: diagnosticsJson(l) });
  else io.stdout(staleText(s, activity, days, io.columns));
  return 0;
}
