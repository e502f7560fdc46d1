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
  readonly dsts: string[] = [];
  /** Destination → its index in `dsts`. */
  private readonly dstIndex = new Map<string, number>();
  /** Per destination index: row key → row. */
  private readonly byDst: Map<number, number>[] = [];
  private lastDst: string | undefined;
  private lastRows: Map<number, number> | undefined;
  private lastDstIndex = 0;

  dst = new Int32Array(64);
  key = new Int32Array(64);
  family = new Uint8Array(64);
  proto = new Uint8Array(64);
  protoNum = new Uint8Array(64);
  dpt = new Int32Array(64);
  icmpType = new Int32Array(64);
  connections = new Float64Array(64);
  packets = new Float64Array(64);
  first = new Float64Array(64);
  last = new Float64Array(64);
  userHead = new Int32Array(64);
  ruleHead = new Int32Array(64);
  ruleBits = new Int32Array(64);

  users = 0;
  uid = new Float64Array(256);
  uidConnections = new Float64Array(256);
  userNext = new Int32Array(256);
  rules = 0;
  rule = new Int32Array(256);
  ruleNext = new Int32Array(256);

  /** The row of (dst, key), or -1. */
  find(dst: string, key: number): number {
    if (dst !== this.lastDst) {
      const i = this.dstIndex.get(dst);
      if (i === undefined) return -1;
      this.lastDst = dst;
      this.lastDstIndex = i;
      this.lastRows = this.byDst[i]!;
    }
    return this.lastRows!.get(key) ?? -1;
  }

  /** A new row for (dst, key), after find() said there was none. */
  open(dst: string, key: number, k: RowKey): number {
    let di = this.dstIndex.get(dst);
    if (di === undefined) {
      di = this.dsts.length;
      this.dsts.push(dst);
      this.dstIndex.set(dst, di);
      this.byDst.push(new Map());
    }
    const r = this.rows++;
    if (r === this.dst.length) this.growRows();
    this.byDst[di]!.set(key, r);
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
    this.lastRows = this.byDst[di];
    return r;
  }

  rowKey(r: number): RowKey {
    return { family: FAMILIES[this.family[r]!]!, proto: PROTOS[this.proto[r]!]!, protoNum: this.protoNum[r]!, dpt: this.dpt[r]!, icmpType: this.icmpType[r]! };
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

  /** The table's own arrays, cut to length (views, not copies: a worker transfers them, see transferables). */
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

  /** Add another table's rows (`ruleOf` maps its rule numbers to this builder's). */
  merge(o: DestTableState, ruleOf: ArrayLike<number>): void {
    for (let s = 0; s < o.rows; s++) {
      const dst = o.dsts[o.dst[s]!]!;
      let r = this.find(dst, o.key[s]!);
      if (r < 0) r = this.open(dst, o.key[s]!, { family: FAMILIES[o.family[s]!]!, proto: PROTOS[o.proto[s]!]!, protoNum: o.protoNum[s]!, dpt: o.dpt[s]!, icmpType: o.icmpType[s]! });
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

/** Twice the length, the contents copied (the rest is zero; calloc'd pages not yet written take no memory). */
function grow<T extends Int32Array | Uint8Array | Float64Array>(a: T): T {
  const b = new (a.constructor as new (n: number) => T)(a.length * 2);
  b.set(a);
  return b;
}

/** The buffers of a state's arrays, to hand them to another thread without a copy (postMessage's transfer list). */
export function transferables(s: DestTableState): ArrayBuffer[] {
  return Object.values(s).flatMap((v) => (ArrayBuffer.isView(v) ? [v.buffer as ArrayBuffer] : []));
}
