/**
 * The indexed evaluator over the IR, which `explain`, `replay` and `lab`
 * answer from. Per family:
 *  - rules with destinations: the address space is cut into elementary
 *    segments at every interval boundary; each segment points at the (interned)
 *    list of rules covering it, found by binary search over packed 32-bit words;
 *  - rules without destinations: a direct table per protocol from port (or
 *    ICMP type) to the list of rules whose L4 selector admits it.
 * Per flow the cost is one binary search plus the few candidates left, not a
 * scan of every rule (compare linear.ts, measured in bench/).
 */
import { BITS, FAMILIES, type Family } from '../policy/address.js';
import type { Ir, IrRule } from '../ir/types.js';
import type { RuleRef } from '../policy/types.js';
import { builtinDecision, builtinFor, decideMatched } from './decide.js';
import type { Decision, Flow } from './flow.js';
import { irMatches } from './ir-match.js';
import { irForwardDecision } from './forward.js';
import { ifaceMatches, ownerMatches, type Owner } from './flow.js';
import type { IrMatch } from '../ir/types.js';

interface FamilyIndex {
  words: number;
  /** Segment starts, `words` uint32 each, most significant first. */
  starts: Uint32Array;
  /** Segment → list id. */
  segList: Int32Array;
  /** Interned candidate lists (rule indices into `rules`). */
  lists: Int32Array[];
  /** Rules without destination: per L4 key → list id. */
  portTable: Map<string, Int32Array>;
  icmpTable: Int32Array;
  /** Rules without destination that match any protocol, and those for "some port" / other protocols. */
  anyL4: Int32Array;
  wholeProto: Map<string, Int32Array>;
  rules: IrRule[];
  compiled: Compiled[];
}

const EMPTY = new Int32Array(0);

export interface IrIndex {
  evaluate(f: Flow): Decision;
}

export function indexedEvaluator(ir: Ir): (f: Flow) => Decision {
  return buildIndex(ir).evaluate;
}

export function buildIndex(ir: Ir): IrIndex {
  const idx = Object.fromEntries(FAMILIES.map((fam) => [fam, buildFamily(ir.rules.filter((r) => r.family === fam), fam)])) as Record<
    Family,
    FamilyIndex
  >;
  const scratch = new Uint32Array(4);
  const evaluate = (f: Flow): Decision => {
    if (f.forwarded) return irForwardDecision(ir, f, irMatches);
    const b = builtinFor(ir, f);
    if (b) return builtinDecision(ir, b);
    const x = idx[f.family];
    const segs = x.lists[x.segList[findSegment(x, f.dst, scratch)]!]!;
    const globals = globalCandidates(x, f);
    // One pass over the few candidates, collecting matching denies and allows together.
    let denies: RuleRef[] | undefined;
    let allows: RuleRef[] | undefined;
    for (let pass = 0; pass < 2; pass++) {
      const list = pass === 0 ? segs : globals;
      for (let i = 0; i < list.length; i++) {
        const c = x.compiled[list[i]!]!;
        if (!compiledMatches(c, f)) continue;
        if (c.deny) {
          if (c.except !== null && c.except.some((e) => irMatches(e, f))) continue;
          (denies ??= []).push(c.origin);
        } else (allows ??= []).push(c.origin);
      }
    }
    return decideMatched(ir, sortRefs(denies), sortRefs(allows));
  };
  return { evaluate };
}

/**
 * A rule flattened into one fixed shape, so the hot loop's property accesses
 * stay monomorphic (IrRule's optional fields give every rule its own shape).
 */
interface Compiled {
  origin: RuleRef;
  deny: boolean;
  anyL4: boolean;
  /** [lo, hi, lo, hi, …] per protocol; null = protocol not admitted. */
  tcp: Int32Array | null;
  udp: Int32Array | null;
  sctp: Int32Array | null;
  icmpAny: boolean;
  icmp: Int32Array | null;
  users: Owner[] | null;
  groups: Owner[] | null;
  via: string[] | null;
  except: IrMatch[] | null;
}

function compile(r: IrRule): Compiled {
  const ports = (proto: string) => {
    const p = r.l4?.ports.find((x) => x.proto === proto);
    return p ? Int32Array.from(p.ranges.flat()) : null;
  };
  return {
    origin: r.origin,
    deny: r.origin.action === 'deny',
    anyL4: !r.l4,
    tcp: ports('tcp'),
    udp: ports('udp'),
    sctp: ports('sctp'),
    icmpAny: r.l4?.icmp === 'any',
    icmp: r.l4 && r.l4.icmp !== 'any' ? Int32Array.from(r.l4.icmp) : null,
    users: r.users ?? null,
    groups: r.groups ?? null,
    via: r.via ?? null,
    except: r.except.length ? r.except : null,
  };
}

/** restMatches (ir-match.ts) over a Compiled rule; the differential property tests keep them equal. */
function compiledMatches(c: Compiled, f: Flow): boolean {
  if (!c.anyL4) {
    if (f.proto === 'icmp') {
      if (!c.icmpAny && (c.icmp === null || f.icmpType === undefined || !c.icmp.includes(f.icmpType))) return false;
    } else {
      const r = f.proto === 'tcp' ? c.tcp : f.proto === 'udp' ? c.udp : f.proto === 'sctp' ? c.sctp : null;
      if (r === null) return false;
      let hit = false;
      const port = f.port;
      for (let i = 0; i < r.length; i += 2) {
        if (port === undefined ? r[i] === 0 && r[i + 1] === 65535 : r[i]! <= port && port <= r[i + 1]!) {
          hit = true;
          break;
        }
      }
      if (!hit) return false;
    }
  }
  if (c.users !== null && !anyOwner(c.users, f.user)) return false;
  if (c.groups !== null && !anyOwner(c.groups, f.group)) return false;
  if (c.via !== null && !c.via.some((v) => ifaceMatches(v, f.via))) return false;
  return true;
}

function anyOwner(want: Owner[], have: Owner | undefined): boolean {
  for (let i = 0; i < want.length; i++) if (ownerMatches(want[i]!, have)) return true;
  return false;
}

const NONE: RuleRef[] = [];

function sortRefs(xs: RuleRef[] | undefined): RuleRef[] {
  if (!xs) return NONE;
  return xs.length > 1 ? xs.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)) : xs;
}

function globalCandidates(x: FamilyIndex, f: Flow): Int32Array {
  if (f.proto === 'icmp') return f.icmpType === undefined ? x.anyL4 : x.lists[x.icmpTable[f.icmpType & 255]!]!;
  if (f.proto === 'other') return x.anyL4;
  if (f.port === undefined) return x.wholeProto.get(f.proto) ?? x.anyL4;
  const t = x.portTable.get(f.proto);
  return t ? x.lists[t[f.port]!]! : x.anyL4;
}

function toWords(v: bigint, words: number, out: Uint32Array): Uint32Array {
  if (words === 1) {
    out[0] = Number(v);
    return out;
  }
  for (let i = words - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffffffffn);
    v >>= 32n;
  }
  return out;
}

/** Index of the last segment whose start ≤ v. Segment 0 starts at 0, so one always exists. */
function findSegment(x: FamilyIndex, v: bigint, scratch: Uint32Array): number {
  const w = x.words;
  let lo = 0;
  let hi = x.starts.length / w - 1;
  if (w === 1) {
    // IPv4: plain numbers, no word loop.
    const k = Number(v);
    const s = x.starts;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (s[mid]! <= k) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
  const key = toWords(v, w, scratch);
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    let cmp = 0;
    for (let i = 0; i < w; i++) {
      const a = x.starts[mid * w + i]!;
      const b = key[i]!;
      if (a !== b) {
        cmp = a < b ? -1 : 1;
        break;
      }
    }
    if (cmp <= 0) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

class Interner {
  readonly lists: Int32Array[] = [EMPTY];
  private readonly ids = new Map<string, number>([['', 0]]);
  id(rules: number[]): number {
    const sorted = [...rules].sort((a, b) => a - b);
    const key = sorted.join(',');
    let id = this.ids.get(key);
    if (id === undefined) {
      id = this.lists.length;
      this.lists.push(Int32Array.from(sorted));
      this.ids.set(key, id);
    }
    return id;
  }
}

function buildFamily(rules: IrRule[], fam: Family): FamilyIndex {
  const words = BITS[fam] / 32;
  const interner = new Interner();
  // Sweep line over interval boundaries.
  const events: { at: bigint; rule: number; add: boolean }[] = [];
  const max = (1n << BigInt(BITS[fam])) - 1n;
  rules.forEach((r, i) => {
    for (const x of r.dst ?? []) {
      events.push({ at: x.lo, rule: i, add: true });
      if (x.hi < max) events.push({ at: x.hi + 1n, rule: i, add: false });
    }
  });
  events.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
  const starts: bigint[] = [0n];
  const segList: number[] = [0];
  const active = new Map<number, number>();
  for (let i = 0; i < events.length; ) {
    const at = events[i]!.at;
    for (; i < events.length && events[i]!.at === at; i++) {
      const e = events[i]!;
      const n = (active.get(e.rule) ?? 0) + (e.add ? 1 : -1);
      if (n === 0) active.delete(e.rule);
      else active.set(e.rule, n);
    }
    const id = interner.id([...active.keys()]);
    if (starts[starts.length - 1] === at) segList[segList.length - 1] = id;
    else if (segList[segList.length - 1] !== id) {
      starts.push(at);
      segList.push(id);
    }
  }
  const packed = new Uint32Array(starts.length * words);
  const tmp = new Uint32Array(4);
  starts.forEach((s, i) => packed.set(toWords(s, words, tmp).subarray(0, words), i * words));

  // Rules without destinations, by L4.
  const global = rules.map((r, i) => ({ r, i })).filter(({ r }) => !r.dst);
  const anyL4 = global.filter(({ r }) => !r.l4).map(({ i }) => i);
  const portTable = new Map<string, Int32Array>();
  const wholeProto = new Map<string, Int32Array>();
  for (const proto of ['tcp', 'udp', 'sctp'] as const) {
    const withProto = global.filter(({ r }) => r.l4?.ports.some((p) => p.proto === proto));
    if (!withProto.length) continue;
    const table = new Int32Array(65536);
    // Port boundaries → runs with the same candidate list.
    const cuts = new Set<number>([0]);
    for (const { r } of withProto) for (const p of r.l4!.ports) if (p.proto === proto) for (const [lo, hi] of p.ranges) (cuts.add(lo), hi < 65535 && cuts.add(hi + 1));
    const sortedCuts = [...cuts].sort((a, b) => a - b);
    sortedCuts.forEach((lo, k) => {
      const hi = (sortedCuts[k + 1] ?? 65536) - 1;
      const list = [...anyL4, ...withProto.filter(({ r }) => r.l4!.ports.some((p) => p.proto === proto && p.ranges.some(([a, b]) => a <= lo && lo <= b))).map(({ i }) => i)];
      table.fill(interner.id(list), lo, hi + 1);
    });
    portTable.set(proto, table);
    const whole = [...anyL4, ...withProto.filter(({ r }) => r.l4!.ports.some((p) => p.proto === proto && p.ranges.some(([a, b]) => a === 0 && b === 65535))).map(({ i }) => i)];
    wholeProto.set(proto, interner.lists[interner.id(whole)]!);
  }
  const icmpTable = new Int32Array(256);
  for (let t = 0; t < 256; t++) {
    const list = [...anyL4, ...global.filter(({ r }) => r.l4 && (r.l4.icmp === 'any' || r.l4.icmp.includes(t))).map(({ i }) => i)];
    icmpTable[t] = interner.id(list);
  }
  return {
    words,
    starts: packed,
    segList: Int32Array.from(segList),
    lists: interner.lists,
    portTable,
    icmpTable,
    anyL4: interner.lists[interner.id(anyL4)]!,
    wholeProto,
    rules,
    compiled: rules.map(compile),
  };
}
