/**
 * `egress refresh POLICY [--watch]`: re-resolve the applied policy's
 * hostnames and update the live ruleset in place — nft: only the hostname
 * sets, in one transaction, rules and counters untouched; iptables (no sets):
 * the chains are reloaded, atomically per family, and their counters restart.
 * A name that fails to resolve keeps its last known good addresses.
 *
 * `--watch` repeats it, each name on the schedule of its own DNS TTL
 * (src/resolve/schedule.ts): a round looks up only the names that are due
 * and answers the others from what it last saw. Node's `dns.lookup` (the
 * system resolver, which honours /etc/hosts) gives no TTL, so addresses
 * still come from it, while each name's TTL comes from DNS
 * (`Resolver.ttl`), bounded to
 * [--min-interval, --max-interval]; a name DNS does not know (an /etc/hosts
 * pin) is looked up every --max-interval, a failed one after --min-interval.
 */
import { visible } from '../../diag/diagnostic.js';
import { refresh } from '../../kernel/lifecycle.js';
import { writeRefreshWatch } from '../../kernel/refresh-watch.js';
import { readState, StateError } from '../../kernel/state.js';
import { systemResolver } from '../../resolve/resolver.js';
import { DEFAULT_BOUNDS, TtlSchedule, type ScheduleBounds } from '../../resolve/schedule.js';
import { UsageError, type Io } from '../io.js';
import { writeResult } from '../envelope.js';
import { diagnosticsJson, type PolicyFlags } from '../shared.js';
import { lifecycleCtx, lifecycleFailure, loadDesired, needRoot, type KernelSeams } from '../kernel-flags.js';

export interface RefreshFlags extends PolicyFlags {
  watch?: boolean;
  minInterval?: string;
  maxInterval?: string;
}

function bounds(flags: RefreshFlags): ScheduleBounds {
  const secs = (v: string | undefined, flag: string, dflt: number) => {
    if (v === undefined) return dflt;
    if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 86_400) throw new UsageError(`${flag} takes whole seconds from 1 to 86400, not "${v}"`);
    return Number(v);
  };
  const b = { min: secs(flags.minInterval, '--min-interval', DEFAULT_BOUNDS.min), max: secs(flags.maxInterval, '--max-interval', DEFAULT_BOUNDS.max) };
  if (flags.minInterval !== undefined && flags.maxInterval === undefined) b.max = Math.max(b.max, b.min);
  if (flags.maxInterval !== undefined && flags.minInterval === undefined) b.min = Math.min(b.min, b.max);
  if (b.min > b.max) throw new UsageError(`--min-interval (${b.min} s) is above --max-interval (${b.max} s)`);
  return b;
}

export async function refreshCommand(io: Io, file: string, flags: RefreshFlags, seams: KernelSeams = {}): Promise<number> {
  const b = bounds(flags);
  if (!flags.watch && (flags.minInterval !== undefined || flags.maxInterval !== undefined)) throw new UsageError('--min-interval and --max-interval go with --watch');
  needRoot('refresh', seams);
  const ctx = lifecycleCtx(io, seams);
  const once = async (io: Io): Promise<{ code: number; hosts: string[] }> => {
    // `io` here may carry a round's resolver (--watch).
    let live;
    try {
      live = readState(ctx.stateDir, 'live');
    } catch (e) {
      if (e instanceof StateError) return { code: lifecycleFailure(io, e, undefined, flags.json ? 'refresh' : undefined), hosts: [] };
      throw e;
    }
    const backend = live?.kind === 'ruleset' ? live.backend : 'nft';
    const { loaded, desired } = await loadDesired(io, file, backend, flags, ctx.stateDir);
    if (!desired) {
      if (flags.json) writeResult(io, 'refresh', { ok: false, result: null, diagnostics: diagnosticsJson(loaded) }, !!flags.watch);
      else io.stderr(`${visible(file)}: invalid; nothing was changed\n`);
      return { code: 1, hosts: [] };
    }
    const hosts = desired.ir.hosts.map((h) => h.name);
    try {
      const r = await refresh(ctx, desired);
      const stale = desired.ir.hosts.filter((h) => h.status !== 'ok').map((h) => h.name);
      if (flags.json) writeResult(io, 'refresh', { ok: true, result: { file, time: new Date().toISOString(), changed: r.changed, reloaded: r.reloaded, sets: r.sets, stale }, diagnostics: diagnosticsJson(loaded) }, !!flags.watch);
      else if (!r.changed) io.stdout(`refresh: no address changed (${hosts.length} hostname${hosts.length === 1 ? '' : 's'})\n`);
      else if (r.reloaded) io.stdout(`refresh: addresses changed; the EGRESS chains were reloaded (iptables has no sets: one transaction per family, counters restart)\n`);
      else io.stdout(`refresh: updated ${r.sets.map((s) => `${s.name} (${[...s.added.map((e) => '+' + e), ...s.removed.map((e) => '-' + e)].join(' ')})`).join(', ')} in place\n`);
      return { code: 0, hosts };
    } catch (e) {
      return { code: lifecycleFailure(io, e, loaded, flags.json ? 'refresh' : undefined), hosts };
    }
  };
  if (!flags.watch) return (await once(io)).code;
  const schedule = new TtlSchedule(b);
  const base = io.resolver ?? systemResolver();
  for (;;) {
    const rr = schedule.roundResolver(base, Date.now(), (name) => base.ttl?.(name) ?? Promise.resolve(undefined));
    const r = await once({ ...io, resolver: rr });
    const now = Date.now();
    const next = schedule.nextDue(r.hosts, now);
    const wait = Math.max(1000, next - now);
    const dueNext = r.hosts.filter((n) => schedule.nextDue([n], now) === next);
    writeRefreshWatch(ctx.stateDir, { pid: process.pid, at: new Date(now).toISOString(), next: new Date(now + wait).toISOString(), names: dueNext });
    if (!flags.json) io.stderr(`refresh: looked up ${rr.looked.length ? rr.looked.join(', ') : 'nothing'}; next ${dueNext.length ? dueNext.join(', ') : 'round'} in ${Math.round(wait / 1000)} s\n`);
    await new Promise((res) => setTimeout(res, wait));
  }
}
