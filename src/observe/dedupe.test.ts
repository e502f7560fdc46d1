import { describe, expect, test } from 'vitest';
import { Deduper } from './dedupe.js';
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
