/**
 * `egress refresh POLICY [--watch]`: re-resolve the applied policy's
 * hostnames and update the live ruleset in place — nft: only the hostname
 * sets, in one transaction, rules and counters untouched; iptables (no sets):
 * the chains are reloaded, atomically per family, and their counters restart.
 * A name that fails to resolve keeps its last known good addresses.
 *
 * `--watch` repeats it. Node's `dns.lookup` (the system resolver, which
 * honours /etc/hosts) gives no TTL, so addresses still come from it, while
 * the schedule comes from the DNS TTLs (`Resolver.resolve4/6` with
 * `{ ttl: true }`): the next round is due when the first name's TTL runs
 * out, bounded to [MIN_INTERVAL_S, MAX_INTERVAL_S]; a name DNS does not know
 * (an /etc/hosts pin) is checked every MAX_INTERVAL_S.
 */
import { Resolver as DnsResolver } from 'node:dns/promises';
import { refresh } from '../../kernel/lifecycle.js';
import { readState, StateError } from '../../kernel/state.js';
import type { Io } from '../io.js';
import { writeJson, type PolicyFlags } from '../shared.js';
import { lifecycleCtx, lifecycleFailure, loadDesired, needRoot, type KernelSeams } from './apply.js';

export const MIN_INTERVAL_S = 30;
export const MAX_INTERVAL_S = 3600;

export interface RefreshFlags extends PolicyFlags {
  watch?: boolean;
}

/** Seconds until the next round: the smallest TTL of `names`, bounded. */
export async function nextInterval(names: string[], ttlOf: (name: string) => Promise<number | undefined> = dnsTtl): Promise<number> {
  let best = MAX_INTERVAL_S;
  for (const n of names) {
    const t = await ttlOf(n);
    if (t !== undefined) best = Math.min(best, t);
  }
  return Math.max(MIN_INTERVAL_S, Math.min(MAX_INTERVAL_S, best));
}

async function dnsTtl(name: string): Promise<number | undefined> {
  const r = new DnsResolver({ timeout: 3000, tries: 1 });
  const ttls: number[] = [];
  for (const q of [r.resolve4.bind(r), r.resolve6.bind(r)]) {
    try {
      for (const a of await q(name, { ttl: true })) ttls.push(a.ttl);
    } catch {
      /* no record of this type, or DNS unreachable */
    }
  }
  return ttls.length ? Math.min(...ttls) : undefined;
}

export async function refreshCommand(io: Io, file: string, flags: RefreshFlags, seams: KernelSeams = {}): Promise<number> {
  needRoot('refresh', seams);
  const ctx = lifecycleCtx(io, seams);
  const once = async (): Promise<{ code: number; hosts: string[] }> => {
    let live;
    try {
      live = readState(ctx.stateDir, 'live');
    } catch (e) {
      if (e instanceof StateError) return { code: lifecycleFailure(io, e, undefined, !!flags.json), hosts: [] };
      throw e;
    }
    const backend = live?.kind === 'ruleset' ? live.backend : 'nft';
    const { loaded, desired } = await loadDesired(io, file, backend, flags, ctx.stateDir);
    if (!desired) {
      if (flags.json) writeJson(io, { ok: false, file });
      else io.stderr(`${file}: invalid; nothing was changed\n`);
      return { code: 1, hosts: [] };
    }
    const hosts = desired.ir.hosts.map((h) => h.name);
    try {
      const r = await refresh(ctx, desired);
      const stale = desired.ir.hosts.filter((h) => h.status !== 'ok').map((h) => h.name);
      if (flags.json) writeJson(io, { ok: true, file, time: new Date().toISOString(), changed: r.changed, reloaded: r.reloaded, sets: r.sets, stale });
      else if (!r.changed) io.stdout(`refresh: no address changed (${hosts.length} hostname${hosts.length === 1 ? '' : 's'})\n`);
      else if (r.reloaded) io.stdout(`refresh: addresses changed; the EGRESS chains were reloaded (iptables has no sets: one transaction per family, counters restart)\n`);
      else io.stdout(`refresh: updated ${r.sets.map((s) => `${s.name} (${[...s.added.map((e) => '+' + e), ...s.removed.map((e) => '-' + e)].join(' ')})`).join(', ')} in place\n`);
      return { code: 0, hosts };
    } catch (e) {
      return { code: lifecycleFailure(io, e, loaded, !!flags.json, { file }), hosts };
    }
  };
  if (!flags.watch) return (await once()).code;
  for (;;) {
    const r = await once();
    const wait = await nextInterval(r.hosts);
    if (!flags.json) io.stderr(`refresh: next in ${wait} s\n`);
    await new Promise((res) => setTimeout(res, wait * 1000));
  }
}
