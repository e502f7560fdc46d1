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

/** Times are kept as tenths of a second since the first event: small integers, which V8 stores unboxed. */
const TICK_MS = 100;
/** The map is not pruned below this size (a prune walks it all). */
const MIN_PRUNE_AT = 256;

interface Seen {
  /** Second hash of the tuple, to tell apart two tuples whose first hash collides. */
  h2: number;
  /** Last seen, in ticks since `base`. */
  t: number;
}

export class Deduper {
  /** First hash of the tuple (30 bits: a small integer, the fastest Map key) → last sighting. */
  private readonly seen = new Map<number, Seen>();
  private base: number | undefined;
  /** The latest time seen, in ticks. */
  private clock = 0;
  /** The time of the last event that had one, in ticks (behind `clock` after the log's time jumped back). */
  private current = 0;
  /** Prune when the map reaches this size: twice what the last prune kept (amortized O(1) an event, whatever the order of times). */
  private pruneAt = MIN_PRUNE_AT;
  private readonly window: number;

  constructor(readonly windowMs = DEDUPE_WINDOW_MS) {
    this.window = Math.round(windowMs / TICK_MS);
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
    const s = this.seen.get(k);
    if (s === undefined) {
      if (this.seen.size >= this.pruneAt) this.prune();
      this.seen.set(k, { h2, t });
      return true;
    }
    // A different tuple with the same first hash takes the slot (it can only make a later repeat count again).
    const repeat = s.h2 === h2 && Math.abs(t - s.t) <= this.window;
    s.h2 = h2;
    s.t = t;
    return !repeat;
  }

  /** Forget keys outside the window of both the latest and the current time, so memory follows the window, not the log size. */
  private prune(): void {
    const horizon = this.clock - this.window;
    const low = this.current - this.window;
    const high = this.current + this.window;
    for (const [k, s] of this.seen) if (s.t < horizon && (s.t < low || s.t > high)) this.seen.delete(k);
    this.pruneAt = Math.max(MIN_PRUNE_AT, this.seen.size * 2);
  }

  /** The attempts seen at or after `fromMs`, as (hashes, ms): what the next part of a log split in parts must know. */
  exportSince(fromMs: number): [number, number, number][] {
    if (this.base === undefined) return [];
    const from = Math.round((fromMs - this.base) / TICK_MS);
    const out: [number, number, number][] = [];
    for (const [k, s] of this.seen) if (s.t >= from) out.push([k, s.h2, this.base + s.t * TICK_MS]);
    return out;
  }

  /** Start from what an earlier part of the log left (exportSince). */
  seed(entries: readonly [number, number, number][]): void {
    for (const [k, h2, ms] of entries) {
      this.base ??= ms;
      const t = Math.round((ms - this.base) / TICK_MS);
      this.seen.set(k, { h2, t });
      if (t > this.clock) this.clock = this.current = t;
    }
  }

  get size(): number {
    return this.seen.size;
  }
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
