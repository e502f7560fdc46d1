import { describe, expect, test } from 'vitest';
import { dedupeHash, Deduper } from './dedupe.js';
import type { LogEvent } from '../logs/event.js';
import { KernelLineParser } from '../logs/parse-kernel.js';
import { NOW } from '../../test/helpers.js';
import { iso, TCP4 } from '../../test/observe/lines.js';

const T0 = Date.UTC(2026, 4, 30, 9);
const p = new KernelLineParser({ now: NOW.getTime() });
/** A SYN from source port `spt` at T0 + `s` seconds. */
const syn = (spt: number, s: number): LogEvent => p.parseLine(iso(`EGRESS D:x ${TCP4.replace('SPT=57408', `SPT=${spt}`)}`, new Date(T0 + s * 1000).toISOString()))!;

describe('dedupe memory when the log\'s time jumps back', () => {
  test('a day back, then 20,000 connections: the map follows the window of the current time', () => {
    const d = new Deduper();
    for (let i = 0; i < 500; i++) d.isNew(syn(1000 + i, 86_400 + i / 10));
    // The clock was set back a day; traffic goes on, one new connection (a new source port) every 0.1 s.
    for (let i = 0; i < 20_000; i++) expect(d.isNew(syn(1000 + (i % 60_000), i / 10))).toBe(true);
    // 60 s of it is 600 tuples (plus the 500 of the latest minute before the jump, and slack up to twice that).
    expect(d.size).toBeLessThan(2_500);
  });

  test('retransmissions are still repeats after the jump, and on both sides of it', () => {
    const d = new Deduper();
    expect(d.isNew(syn(5000, 86_400))).toBe(true);
    expect(d.isNew(syn(6000, 10))).toBe(true);
    expect(d.isNew(syn(6000, 11))).toBe(false);
    expect(d.isNew(syn(5000, 86_401))).toBe(false);
    for (let i = 0; i < 5000; i++) d.isNew(syn(10_000 + i, 12 + i / 100));
    // The minute before the jump is kept through prunes (the latest time's window); the current one too.
    expect(d.isNew(syn(5000, 86_402))).toBe(false);
    expect(d.isNew(syn(10_000 + 4999, 12 + 49.99 + 1))).toBe(false);
  });
});

/** The deduper as it was (a Map of small objects), with the same prune schedule: the table must answer exactly as it did. */
class MapDeduper {
  private readonly seen = new Map<number, { h2: number; t: number }>();
  private base: number | undefined;
  private clock = 0;
  private current = 0;
  private pruneAt = 256;
  private readonly window = 600;
  isNew(e: LogEvent): boolean {
    let t = this.current;
    if (e.time !== undefined) {
      this.base ??= e.time;
      t = this.current = Math.round((e.time - this.base) / 100);
      if (t > this.clock) this.clock = t;
    }
    const h = dedupeHash(e);
    const k = Math.floor(h / 2 ** 32) & 0x3fffffff;
    const h2 = h % 2 ** 32 | 0;
    const s = this.seen.get(k);
    if (s === undefined) {
      if (this.seen.size >= this.pruneAt) {
        const horizon = this.clock - this.window;
        for (const [x, y] of this.seen) if (y.t < horizon && (y.t < this.current - this.window || y.t > this.current + this.window)) this.seen.delete(x);
        this.pruneAt = Math.max(256, this.seen.size * 2);
      }
      this.seen.set(k, { h2, t });
      return true;
    }
    const repeat = s.h2 === h2 && Math.abs(t - s.t) <= this.window;
    s.h2 = h2;
    s.t = t;
    return !repeat;
  }
  get size(): number {
    return this.seen.size;
  }
}

describe('the deduper\'s table', () => {
  test('answers as a Map did over bursts, lulls, jumps back and forth, and events without a time', () => {
    let seed = 7;
    const rand = () => ((seed = (Math.imul(seed ^ (seed >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0) / 2 ** 32);
    const d = new Deduper();
    const m = new MapDeduper();
    const base = syn(1, 0);
    let s = 0;
    let differ = 0;
    let repeats = 0;
    for (let i = 0; i < 300_000; i++) {
      // Phases of 20,000 events: a burst (many ports, little time), a lull (few ports, much time), a jump back or forward.
      const phase = Math.floor(i / 20_000) % 5;
      if (i % 20_000 === 0 && phase === 3) s -= 3_600 * (1 + Math.floor(rand() * 48));
      if (i % 20_000 === 0 && phase === 4) s += 86_400;
      s += phase === 0 ? 0.001 : phase === 1 ? 0.5 * rand() : 0.01 + 0.05 * rand();
      const ports = phase === 0 ? 50_000 : phase === 1 ? 200 : 5_000;
      const e: LogEvent = { ...base, spt: 1024 + Math.floor(rand() * ports), time: rand() < 0.02 ? undefined : T0 + Math.round(s * 1000) };
      const a = d.isNew(e);
      if (a !== m.isNew(e)) differ++;
      if (!a) repeats++;
      if (d.size !== m.size) differ++;
    }
    expect(differ).toBe(0);
    // Not a trivial run: both answers were common.
    expect(repeats).toBeGreaterThan(30_000);
    expect(repeats).toBeLessThan(270_000);
  });

  test('seeded with more tuples than it holds, it grows and finds them all', () => {
    const a = new Deduper();
    for (let i = 0; i < 5_000; i++) a.isNew(syn(10_000 + i, i / 1000));
    const b = new Deduper();
    b.seed(a.exportSince(T0));
    expect(b.size).toBe(5_000);
    for (let i = 0; i < 5_000; i++) expect(b.isNew(syn(10_000 + i, 6 + i / 1000))).toBe(false);
    expect(b.isNew(syn(9_999, 6))).toBe(true);
  });
});
