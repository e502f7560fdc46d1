/**
 * When `refresh --watch` looks each hostname up again: every name on the
 * schedule of its own DNS TTL, bounded to [min, max] seconds. A name DNS
 * gives no TTL for (an /etc/hosts pin) is looked up every `max`; a name whose
 * lookup failed is tried again after `min` (its last known good addresses
 * stay live meanwhile).
 *
 * Pure: times are milliseconds passed in, so tests drive it with a fake clock.
 */
import type { HostAddresses, Resolver } from './resolver.js';

export interface ScheduleBounds {
  /** Seconds. */
  min: number;
  /** Seconds. */
  max: number;
}

export const DEFAULT_BOUNDS: ScheduleBounds = { min: 30, max: 3600 };

export class TtlSchedule {
  private readonly dueAt = new Map<string, number>();
  private readonly cache = new Map<string, HostAddresses>();

  constructor(readonly bounds: ScheduleBounds = DEFAULT_BOUNDS) {
    if (!(bounds.min >= 1 && bounds.max >= bounds.min)) throw new Error(`bad refresh bounds: min ${bounds.min} s, max ${bounds.max} s`);
  }

  /** Seconds until a name looked up now is due again. */
  interval(ttl: number | undefined, ok: boolean): number {
    if (!ok) return this.bounds.min;
    return Math.max(this.bounds.min, Math.min(this.bounds.max, ttl ?? this.bounds.max));
  }

  /** Whether `name` must be looked up at `now` (a name never looked up is due at once). */
  isDue(name: string, now: number): boolean {
    const at = this.dueAt.get(name);
    return at === undefined || at <= now;
  }

  /** Record a lookup of `name` at `now`: its addresses (undefined: it failed) and its TTL if DNS told one. */
  record(name: string, now: number, addrs: HostAddresses | undefined, ttl: number | undefined): void {
    if (addrs) this.cache.set(name, addrs);
    this.dueAt.set(name, now + this.interval(ttl, addrs !== undefined) * 1000);
  }

  /** When the next of `names` is due (ms); `now` when one never looked up is among them. */
  nextDue(names: readonly string[], now: number): number {
    let next = Infinity;
    for (const n of names) next = Math.min(next, this.dueAt.get(n) ?? now);
    return next === Infinity ? now + this.bounds.max * 1000 : next;
  }

  /**
   * A resolver for one round at `now`: names that are due are looked up
   * through `base` (and their TTL through `ttlOf`); the others answer from
   * the cache without a query. A failed lookup throws, and so does a name
   * not due that has never resolved, so the loader keeps the last known good
   * addresses (from the state directory) and says so.
   */
  roundResolver(base: Resolver, now: number, ttlOf: (name: string) => Promise<number | undefined>): Resolver & { looked: string[] } {
    const looked: string[] = [];
    return {
      ...base,
      looked,
      lookupHost: async (name) => {
        if (!this.isDue(name, now)) {
          const cached = this.cache.get(name);
          if (!cached) throw new Error(`not resolved; next try in ${Math.ceil((this.dueAt.get(name)! - now) / 1000)} s`);
          return structuredClone(cached);
        }
        looked.push(name);
        let addrs: HostAddresses;
        try {
          addrs = await base.lookupHost(name);
        } catch (e) {
          this.record(name, now, undefined, undefined);
          throw e;
        }
        this.record(name, now, addrs, await ttlOf(name).catch(() => undefined));
        return structuredClone(addrs);
      },
    };
  }
}
