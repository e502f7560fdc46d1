/**
 * One connection attempt, counted once. A refused or dropped TCP connect
 * logs a SYN and then every retransmission of it (1 s, 3 s, 7 s, … apart,
 * about two minutes in all with the default tcp_syn_retries); a UDP client
 * retries from the same socket; `ping` sends one echo a second with the same
 * identifier. All of these keep their 5-tuple, so:
 *
 *   an event is a repeat when an event with the same source address, source
 *   port (ICMP: echo identifier), destination address, destination port
 *   (ICMP: type), protocol and uid was seen less than `windowMs` (default
 *   60 s) before it. The window slides: each repeat extends it.
 *
 * A new connection from the same client gets a new ephemeral source port,
 * so it is counted again. Events without a time are compared with the time
 * of the last event that had one (none at all: every repeat of a key is one
 * attempt).
 *
 * Memory follows the window, not the log: what is kept is the tuples seen
 * within the window of the latest time or of the current one. A log whose
 * time jumps back (a clock set back, a reboot under dmesg stamps) is pruned
 * by its current time too; pruned on the latest time alone, nothing of it
 * was ever let go until it caught up, one entry per connection.
 */
import type { LogEvent } from '../logs/event.js';

export const DEDUPE_WINDOW_MS = 60_000;

/** Times are kept as tenths of a second since the first event. */
const TICK_MS = 100;
/** The table is not pruned below this many entries (a prune walks it all). */
const MIN_PRUNE_AT = 256;
/** Fibonacci hashing: the slot is the top bits of the key times 2^32/phi. */
const GOLDEN = 0x9e3779b1 | 0;

/**
 * The tuples seen, in an open-addressing table of typed arrays (linear
 * probing, at most half full): `keys[i]` the first hash (30 bits; -1 =
 * empty), `h2s[i]` the second, `ticks[i]` when it was last seen. A Map of
 * small objects reallocated its table at every prune, thousands of times
 * over a big log; the discarded tables went to V8's large-object space,
 * freed only by full collections, and with the aggregation's live data
 * beside them `stats` of a 2M-line log peaked at ~240 MB. This table is
 * reallocated only when it must grow or can shrink.
 */
export class Deduper {
  private keys = new Int32Array(0);
  private h2s = new Int32Array(0);
  private ticks = new Float64Array(0);
  /** 32 - log2(capacity): the shift that takes a hash's top bits as the slot. */
  private shift = 32;
  /** Entries in the table. */
  private count = 0;
  private base: number | undefined;
  /** The latest time seen, in ticks. */
  private clock = 0;
  /** The time of the last event that had one, in ticks (behind `clock` after the log's time jumped back). */
  private current = 0;
  /** Prune when the table reaches this many entries: twice what the last prune kept (amortized O(1) an event, whatever the order of times). */
  private pruneAt = MIN_PRUNE_AT;
  private readonly window: number;

  constructor(readonly windowMs = DEDUPE_WINDOW_MS) {
    this.window = Math.round(windowMs / TICK_MS);
    this.resize(MIN_PRUNE_AT * 2);
  }

  /** True when `e` starts a new connection attempt; false for a repeat of one seen within the window. */
  isNew(e: LogEvent): boolean {
    let t = this.current;
    if (e.time !== undefined) {
      this.base ??= e.time;
      t = this.current = Math.round((e.time - this.base) / TICK_MS);
      if (t > this.clock) this.clock = t;
    }
    tupleHash(e);
    const k = H[0]! & 0x3fffffff;
    const h2 = H[1]!;
    let i = this.slot(k);
    if (this.keys[i] !== k) {
      if (this.count >= this.pruneAt) {
        this.prune();
        i = this.slot(k);
      }
      this.put(i, k, h2, t);
      return true;
    }
    // A different tuple with the same first hash takes the slot (it can only make a later repeat count again).
    const repeat = this.h2s[i] === h2 && Math.abs(t - this.ticks[i]!) <= this.window;
    this.h2s[i] = h2;
    this.ticks[i] = t;
    return !repeat;
  }

  /** The slot that holds `k`, or the empty slot where it would go. */
  private slot(k: number): number {
    const keys = this.keys;
    const mask = keys.length - 1;
    let i = Math.imul(k, GOLDEN) >>> this.shift;
    for (let x = keys[i]!; x !== k && x !== -1; x = keys[i]!) i = (i + 1) & mask;
    return i;
  }

  /** A new entry in the empty slot `i` (found by slot(k)); the table grows to stay at most half full. */
  private put(i: number, k: number, h2: number, t: number): void {
    this.keys[i] = k;
    this.h2s[i] = h2;
    this.ticks[i] = t;
    if (++this.count * 2 > this.keys.length) this.resize(this.keys.length * 2);
  }

  /** Forget keys outside the window of both the latest and the current time, so memory follows the window, not the log size. */
  private prune(): void {
    const horizon = this.clock - this.window;
    const low = this.current - this.window;
    const high = this.current + this.window;
    const { keys, ticks } = this;
    let n = 0;
    for (let i = 0; i < keys.length; i++) {
      if (keys[i] === -1) continue;
      const t = ticks[i]!;
      if (t < horizon && (t < low || t > high)) keys[i] = -1;
      else n++;
    }
    this.count = n;
    this.pruneAt = Math.max(MIN_PRUNE_AT, n * 2);
    // Room for pruneAt entries at most half full; a table 4 times that size (after a burst) is given back.
    const want = capacityFor(this.pruneAt);
    if (want > keys.length || want * 4 <= keys.length) this.resize(want);
    else this.rehome();
  }

  /**
   * After removals, move every entry back to the first free slot of its
   * probe sequence. Walked from just after an empty slot, no probe sequence
   * wraps past the start, so a slot freed by a move is never one an entry
   * already walked still depends on.
   */
  private rehome(): void {
    const { keys, h2s, ticks } = this;
    const mask = keys.length - 1;
    const start = keys.indexOf(-1);
    for (let j = 1; j <= keys.length; j++) {
      const i = (start + j) & mask;
      const k = keys[i]!;
      if (k === -1) continue;
      let at = Math.imul(k, GOLDEN) >>> this.shift;
      if (at === i) continue;
      keys[i] = -1;
      while (keys[at] !== -1) at = (at + 1) & mask;
      keys[at] = k;
      h2s[at] = h2s[i]!;
      ticks[at] = ticks[i]!;
    }
  }

  /** A new table of `capacity` slots (a power of two) holding the entries of the old one. */
  private resize(capacity: number): void {
    const { keys, h2s, ticks } = this;
    this.keys = new Int32Array(capacity).fill(-1);
    this.h2s = new Int32Array(capacity);
    this.ticks = new Float64Array(capacity);
    this.shift = 32 - Math.log2(capacity);
    this.count = 0;
    for (let i = 0; i < keys.length; i++) if (keys[i] !== -1) this.put(this.slot(keys[i]!), keys[i]!, h2s[i]!, ticks[i]!);
  }

  /** The attempts seen at or after `fromMs`, as (hashes, ms): what the next part of a log split in parts must know. */
  exportSince(fromMs: number): [number, number, number][] {
    if (this.base === undefined) return [];
    const from = Math.round((fromMs - this.base) / TICK_MS);
    const out: [number, number, number][] = [];
    const { keys, h2s, ticks } = this;
    for (let i = 0; i < keys.length; i++) if (keys[i] !== -1 && ticks[i]! >= from) out.push([keys[i]!, h2s[i]!, this.base + ticks[i]! * TICK_MS]);
    return out;
  }

  /** Start from what an earlier part of the log left (exportSince). */
  seed(entries: readonly [number, number, number][]): void {
    for (const [k, h2, ms] of entries) {
      this.base ??= ms;
      const t = Math.round((ms - this.base) / TICK_MS);
      const i = this.slot(k);
      if (this.keys[i] === k) {
        this.h2s[i] = h2;
        this.ticks[i] = t;
      } else this.put(i, k, h2, t);
      if (t > this.clock) this.clock = this.current = t;
    }
  }

  get size(): number {
    return this.count;
  }
}

/** Slots for `n` entries of an open-addressing table at most half full: a power of two, at least 2^minLog2 (dest-table.ts uses it too). */
export function capacityFor(n: number, minLog2 = 1): number {
  return 2 ** Math.max(minLog2, Math.ceil(Math.log2(n * 2)));
}

function mixString(h: number, s: string): number {
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h;
}

function mixInt(h: number, v: number): number {
  h = Math.imul(h ^ (v & 0xffff), 0x01000193);
  return Math.imul(h ^ (v >>> 16), 0x01000193);
}

const H = new Int32Array(2);

/**
 * Two independent 32-bit FNV-1a style hashes of the tuple, into H (no
 * allocation): the map is keyed by a number, not by a string built per
 * line. Attempts are told apart by 62 bits in all; two live in the same
 * window colliding on all of them is not a practical concern.
 */
function tupleHash(e: LogEvent): void {
  const a = e.proto === 'icmp' ? e.icmpId ?? 0xffffffff : e.spt ?? 0xffffffff;
  const b = e.proto === 'icmp' ? e.icmpType ?? 0xffffffff : e.dpt ?? 0xffffffff;
  const u = e.uid ?? 0xffffffff;
  let h1 = mixString(0x811c9dc5, e.src);
  h1 = mixInt(mixInt(mixInt(h1, a), b), u);
  H[0] = mixInt(mixString(h1, e.dst), e.protoNum);
  let h2 = mixString(0x050c5d1f, e.dst);
  h2 = mixInt(mixInt(mixInt(h2, b), e.protoNum), a);
  H[1] = mixInt(mixString(h2, e.src), u);
}

/** The tuple's hashes as one number (tests, diagnostics). */
export function dedupeHash(e: LogEvent): number {
  tupleHash(e);
  return (H[0]! >>> 0) * 0x100000000 + (H[1]! >>> 0);
}
