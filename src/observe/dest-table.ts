/**
 * The per-destination accumulators of StatsBuilder (aggregate.ts), one row
 * per destination address × protocol × port, as columns of typed arrays.
 *
 * A busy host denies connections to tens of thousands of destination ×
 * port pairs. As an object each with three arrays (users, their counts,
 * rules; `push` sizes an array to 17 slots), a row took ~720 bytes of V8
 * heap: 33 MB for the 45,600 of `bench/logs.mjs`, and V8 let the old
 * generation grow to a few times that between full collections (and
 * `stats` with worker threads held it three times over: each worker's, and
 * their clones in the main thread). Here a row is ~60 bytes of columns plus
 * 20 bytes per user in a pool of linked entries, outside V8's heap, and a
 * worker posts it as a few typed arrays. Rules are bits (the first 32; any
 * others are linked entries too).
 *
 * Rows are numbered in the order they appear; lists are linked through
 * 1-based entry numbers (0 = end), so zeroed arrays need no filling.
 */
import type { Family } from '../policy/address.js';
import type { EventProto } from '../logs/event.js';
import { capacityFor } from './dedupe.js';

/** The slot table never has fewer than 2^7 = 128 slots. */
const MIN_SLOTS_LOG2 = 7;

const PROTOS: readonly EventProto[] = ['tcp', 'udp', 'sctp', 'icmp', 'other'];
const FAMILIES: readonly Family[] = ['ipv4', 'ipv6'];

/** A DestTable's contents as plain data (typed arrays and arrays of strings survive structured clone, and clone fast). */
export interface DestTableState {
  rows: number;
  /** Destination addresses, first seen first; `dst[row]` indexes it. */
  dsts: string[];
  dst: Int32Array;
  /** protoNum × 70,000 + port (ICMP: type; none: 69,999): the row's key within its destination. */
  key: Int32Array;
  family: Uint8Array;
  proto: Uint8Array;
  protoNum: Uint8Array;
  /** -1 when none. */
  dpt: Int32Array;
  icmpType: Int32Array;
  connections: Float64Array;
  packets: Float64Array;
  /** Infinity / -Infinity until an event with a time. */
  first: Float64Array;
  last: Float64Array;
  /** First entry of the row's users / rules list (0: none). */
  userHead: Int32Array;
  ruleHead: Int32Array;
  /** The row's rules numbered below 32, as bits (the others are in its rules list). */
  ruleBits: Int32Array;
  /** Users entries: uid (-1: not logged; -2: forwarded), connections, next entry. */
  users: number;
  uid: Float64Array;
  uidConnections: Float64Array;
  userNext: Int32Array;
  /** Rules entries (rule numbers from 32): the builder's rule number, next entry. */
  rules: number;
  rule: Int32Array;
  ruleNext: Int32Array;
}

/** What a row is about, as the event that opened it said. */
export interface RowKey {
  family: Family;
  proto: EventProto;
  protoNum: number;
  dpt: number;
  icmpType: number;
}

export class DestTable {
  rows = 0;
  dsts: string[] = [];
  /** Destination → its index in `dsts`. */
  private readonly dstIndex = new Map<string, number>();
  private lastDst: string | undefined;
  private lastDstIndex = 0;
  /**
   * (destination index, key) → row, open addressing (linear probing, at
   * most half full): row + 1 in the slot, 0 = empty. (A Map of rows per
   * destination cost ~200 bytes a destination: 21 MB for 100,000.)
   */
  private slots = new Int32Array(128);
  /** 32 - log2(slots.length): a hash's top bits are the slot. */
  private shift = 25;

  dst: Int32Array = new Int32Array(64);
  key: Int32Array = new Int32Array(64);
  family: Uint8Array = new Uint8Array(64);
  proto: Uint8Array = new Uint8Array(64);
  protoNum: Uint8Array = new Uint8Array(64);
  dpt: Int32Array = new Int32Array(64);
  icmpType: Int32Array = new Int32Array(64);
  connections: Float64Array = new Float64Array(64);
  packets: Float64Array = new Float64Array(64);
  first: Float64Array = new Float64Array(64);
  last: Float64Array = new Float64Array(64);
  userHead: Int32Array = new Int32Array(64);
  ruleHead: Int32Array = new Int32Array(64);
  ruleBits: Int32Array = new Int32Array(64);

  users = 0;
  uid: Float64Array = new Float64Array(256);
  uidConnections: Float64Array = new Float64Array(256);
  userNext: Int32Array = new Int32Array(256);
  rules = 0;
  rule: Int32Array = new Int32Array(256);
  ruleNext: Int32Array = new Int32Array(256);

  /** The row of (dst, key), or -1. */
  find(dst: string, key: number): number {
    if (dst !== this.lastDst) {
      const i = this.dstIndex.get(dst);
      if (i === undefined) return -1;
      this.lastDst = dst;
      this.lastDstIndex = i;
    }
    const { slots, dst: dstOf, key: keyOf } = this;
    const mask = slots.length - 1;
    const di = this.lastDstIndex;
    for (let i = slotOf(di, key, this.shift); ; i = (i + 1) & mask) {
      const r = slots[i]! - 1;
      if (r < 0 || (keyOf[r] === key && dstOf[r] === di)) return r;
    }
  }

  /** A new row for (dst, key), after find() said there was none. */
  open(dst: string, key: number, k: RowKey): number {
    let di = this.dstIndex.get(dst);
    if (di === undefined) {
      di = this.dsts.length;
      this.dsts.push(dst);
      this.dstIndex.set(dst, di);
    }
    const r = this.rows++;
    if (r === this.dst.length) this.growRows();
    this.dst[r] = di;
    this.key[r] = key;
    this.family[r] = FAMILIES.indexOf(k.family);
    this.proto[r] = PROTOS.indexOf(k.proto);
    this.protoNum[r] = k.protoNum;
    this.dpt[r] = k.dpt;
    this.icmpType[r] = k.icmpType;
    this.first[r] = Infinity;
    this.last[r] = -Infinity;
    this.lastDst = dst;
    this.lastDstIndex = di;
    if (this.rows * 2 > this.slots.length) this.rehash(capacityFor(this.rows, MIN_SLOTS_LOG2));
    else this.place(r);
    return r;
  }

  /** Row r into its slot. */
  private place(r: number): void {
    const slots = this.slots;
    const mask = slots.length - 1;
    let i = slotOf(this.dst[r]!, this.key[r]!, this.shift);
    while (slots[i] !== 0) i = (i + 1) & mask;
    slots[i] = r + 1;
  }

  /** Every row into a table of `size` slots. */
  private rehash(size: number): void {
    release(this.slots);
    this.slots = new Int32Array(size);
    this.shift = 32 - Math.log2(size);
    for (let r = 0; r < this.rows; r++) this.place(r);
  }

  rowKey(r: number): RowKey {
    return rowKeyOf(this, r);
  }

  /** Add `n` connections of `uid` to row r. */
  addUser(r: number, uid: number, n: number): void {
    for (let u = this.userHead[r]!; u; u = this.userNext[u]!)
      if (this.uid[u] === uid) {
        this.uidConnections[u]! += n;
        return;
      }
    const u = ++this.users;
    if (u === this.uid.length) {
      this.uid = grow(this.uid);
      this.uidConnections = grow(this.uidConnections);
      this.userNext = grow(this.userNext);
    }
    this.uid[u] = uid;
    this.uidConnections[u] = n;
    this.userNext[u] = this.userHead[r]!;
    this.userHead[r] = u;
  }

  /** Note that rule number `rule` decided a connection of row r. */
  addRule(r: number, rule: number): void {
    if (rule < 32) {
      this.ruleBits[r]! |= 1 << rule;
      return;
    }
    for (let x = this.ruleHead[r]!; x; x = this.ruleNext[x]!) if (this.rule[x] === rule) return;
    const x = ++this.rules;
    if (x === this.rule.length) {
      this.rule = grow(this.rule);
      this.ruleNext = grow(this.ruleNext);
    }
    this.rule[x] = rule;
    this.ruleNext[x] = this.ruleHead[r]!;
    this.ruleHead[r] = x;
  }

  /** Row r's users as [uid, connections]. */
  usersOf(r: number): [number, number][] {
    const out: [number, number][] = [];
    for (let u = this.userHead[r]!; u; u = this.userNext[u]!) out.push([this.uid[u]!, this.uidConnections[u]!]);
    return out;
  }

  /** Row r's rule numbers. */
  rulesOf(r: number): number[] {
    const out: number[] = [];
    for (let bits = this.ruleBits[r]!, i = 0; bits; bits >>>= 1, i++) if (bits & 1) out.push(i);
    for (let x = this.ruleHead[r]!; x; x = this.ruleNext[x]!) out.push(this.rule[x]!);
    return out;
  }

  /** The table's own arrays, cut to length: views, not copies (a worker transfers them, see transferables), valid until the table next changes. */
  exportState(): DestTableState {
    const n = this.rows;
    const cut = <T extends Int32Array | Uint8Array | Float64Array>(a: T, len: number): T => a.subarray(0, len) as T;
    return {
      rows: n,
      dsts: this.dsts,
      dst: cut(this.dst, n),
      key: cut(this.key, n),
      family: cut(this.family, n),
      proto: cut(this.proto, n),
      protoNum: cut(this.protoNum, n),
      dpt: cut(this.dpt, n),
      icmpType: cut(this.icmpType, n),
      connections: cut(this.connections, n),
      packets: cut(this.packets, n),
      first: cut(this.first, n),
      last: cut(this.last, n),
      userHead: cut(this.userHead, n),
      ruleHead: cut(this.ruleHead, n),
      ruleBits: cut(this.ruleBits, n),
      users: this.users,
      uid: cut(this.uid, this.users + 1),
      uidConnections: cut(this.uidConnections, this.users + 1),
      userNext: cut(this.userNext, this.users + 1),
      rules: this.rules,
      rule: cut(this.rule, this.rules + 1),
      ruleNext: cut(this.ruleNext, this.rules + 1),
    };
  }

  /** Take another table's arrays as this (empty) table's own: the parallel reader's first part, without a copy. */
  adopt(o: DestTableState): void {
    ({ rows: this.rows, dst: this.dst, key: this.key, family: this.family, proto: this.proto, protoNum: this.protoNum, dpt: this.dpt, icmpType: this.icmpType } = o);
    ({ connections: this.connections, packets: this.packets, first: this.first, last: this.last, userHead: this.userHead, ruleHead: this.ruleHead, ruleBits: this.ruleBits } = o);
    ({ users: this.users, uid: this.uid, uidConnections: this.uidConnections, userNext: this.userNext, rules: this.rules, rule: this.rule, ruleNext: this.ruleNext } = o);
    this.dsts = o.dsts;
    this.dsts.forEach((d, i) => this.dstIndex.set(d, i));
    this.lastDst = undefined;
    this.rehash(capacityFor(this.rows, MIN_SLOTS_LOG2));
  }

  /** Add another table's rows (`ruleOf` maps its rule numbers to this builder's). */
  merge(o: DestTableState, ruleOf: ArrayLike<number>): void {
    for (let s = 0; s < o.rows; s++) {
      const dst = o.dsts[o.dst[s]!]!;
      let r = this.find(dst, o.key[s]!);
      if (r < 0) r = this.open(dst, o.key[s]!, rowKeyOf(o, s));
      this.connections[r]! += o.connections[s]!;
      this.packets[r]! += o.packets[s]!;
      this.first[r] = Math.min(this.first[r]!, o.first[s]!);
      this.last[r] = Math.max(this.last[r]!, o.last[s]!);
      for (let u = o.userHead[s]!; u; u = o.userNext[u]!) this.addUser(r, o.uid[u]!, o.uidConnections[u]!);
      for (let bits = o.ruleBits[s]!, i = 0; bits; bits >>>= 1, i++) if (bits & 1) this.addRule(r, ruleOf[i]!);
      for (let x = o.ruleHead[s]!; x; x = o.ruleNext[x]!) this.addRule(r, ruleOf[o.rule[x]!]!);
    }
  }

  private growRows(): void {
    this.dst = grow(this.dst);
    this.key = grow(this.key);
    this.family = grow(this.family);
    this.proto = grow(this.proto);
    this.protoNum = grow(this.protoNum);
    this.dpt = grow(this.dpt);
    this.icmpType = grow(this.icmpType);
    this.connections = grow(this.connections);
    this.packets = grow(this.packets);
    this.first = grow(this.first);
    this.last = grow(this.last);
    this.userHead = grow(this.userHead);
    this.ruleHead = grow(this.ruleHead);
    this.ruleBits = grow(this.ruleBits);
  }
}

/** What row r of a table (or of a table's state) is about. */
function rowKeyOf(t: Pick<DestTableState, 'family' | 'proto' | 'protoNum' | 'dpt' | 'icmpType'>, r: number): RowKey {
  return { family: FAMILIES[t.family[r]!]!, proto: PROTOS[t.proto[r]!]!, protoNum: t.protoNum[r]!, dpt: t.dpt[r]!, icmpType: t.icmpType[r]! };
}

/** Twice the length (at least 64), the contents copied (the rest is zero; calloc'd pages not yet written take no memory). */
function grow<T extends Int32Array | Uint8Array | Float64Array>(a: T): T {
  const b = new (a.constructor as new (n: number) => T)(Math.max(64, a.length * 2));
  b.set(a);
  release(a);
  return b;
}

/**
 * Give `a`'s memory back now, not at V8's next full collection: a typed
 * array that lived long enough is in the old generation, and V8 lets tens
 * of MB of such dead buffers wait for a full collection (`stats` of 300,000
 * destination × port rows: 174 MiB peak RSS, 147 MiB with this). Moving the
 * buffer into a throwaway clone detaches `a` (it must not be used again);
 * the clone is young, and its buffer is freed at the next scavenge.
 */
function release(a: Int32Array | Uint8Array | Float64Array): void {
  structuredClone(a, { transfer: [a.buffer as ArrayBuffer] });
}

/** The buffers of a state's arrays, to hand them to another thread without a copy (postMessage's transfer list). */
export function transferables(s: DestTableState): ArrayBuffer[] {
  return Object.values(s).flatMap((v) => (ArrayBuffer.isView(v) ? [v.buffer as ArrayBuffer] : []));
}

/** The first slot of (destination index, key) in a table of 2^(32 - shift) slots. */
function slotOf(dst: number, key: number, shift: number): number {
  return Math.imul(Math.imul(dst, 0x9e3779b1) ^ key, 0x85ebca6b) >>> shift;
}

