/**
 * Names that follow DNS, for the evaluators. Flows to addresses are judged
 * with every dynamic (`dns`) set empty — nobody knows the answers in advance
 * — so these helpers answer the other question, the one `explain --to NAME`
 * asks: what happens to a connection to an address the forwarder answered
 * for NAME. The forwarder refuses the name (a deny rule names it), or puts
 * the address into the sets of every allow rule whose names cover it before
 * the program gets it (`withAnswer`), or just forwards the answer.
 */
import { FAMILIES, type Family } from '../policy/address.js';
import { nameMatches } from '../policy/dns-name.js';
import type { RuleRef } from '../policy/types.js';
import type { Ir, IrInterval, IrRule } from '../ir/types.js';
import type { ResolvedPolicy } from '../resolve/types.js';

export interface NameOutcome {
  /** refused: a deny rule names it; published: allow rules' sets get its answers first; forwarded: no rule names it. */
  answer: 'refused' | 'published' | 'forwarded';
  /** The deny rules (refused) or allow rules (published) whose names cover it, by name. */
  rules: RuleRef[];
  /** published: the families in which those rules have a dynamic set. */
  families: Family[];
}

/** What the forwarder does with `name` under this IR (undefined without `dns.proxy`). */
export function nameOutcome(ir: Ir, name: string): NameOutcome | undefined {
  if (!ir.dns) return undefined;
  const uniq = (refs: RuleRef[]) => [...new Map(refs.map((r) => [r.name, r])).values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const refused = uniq(ir.dns.refused.filter((x) => nameMatches(x.pattern, name)).map((x) => x.origin));
  if (refused.length) return { answer: 'refused', rules: refused, families: [] };
  const twins = [...ir.rules, ...(ir.forward?.rules ?? [])].filter((r) => r.origin.action === 'allow' && covers(r, name));
  if (!twins.length) return { answer: 'forwarded', rules: [], families: [] };
  return { answer: 'published', rules: uniq(twins.map((r) => r.origin)), families: FAMILIES.filter((f) => twins.some((r) => r.family === f)) };
}

function covers(r: IrRule, name: string): boolean {
  return r.sets?.some((s) => s.kind === 'dns' && (s.patterns ?? []).some((p) => nameMatches(p, name))) ?? false;
}

/**
 * The IR as it is once the forwarder has answered `name` with `addresses`:
 * each allow rule whose names cover it holds them in its `dns` set, and so
 * in its destinations. Pure: the input is not changed.
 */
export function withAnswer(ir: Ir, name: string, addresses: { family: Family; value: bigint }[]): Ir {
  // The forwarder fills a rule's sets, which its host and forward twins share.
  const answered = (r: IrRule): IrRule => {
    if (r.origin.action !== 'allow' || !covers(r, name)) return r;
    const mine = addresses.filter((a) => a.family === r.family);
    if (!mine.length) return r;
    const src = r.sources.length;
    const dst = mergeInto(r.dst ?? [], mine.map((a) => ({ lo: a.value, hi: a.value, src: [src] })));
    const sets = r.sets!.map((s) => (s.kind === 'dns' ? { ...s, elements: mine.map((a) => ({ lo: a.value, hi: a.value })) } : s));
    return { ...r, dst, sets, sources: [...r.sources, { text: name, span: r.origin.span, host: name }] };
  };
  return { ...ir, rules: ir.rules.map(answered), ...(ir.forward ? { forward: { ...ir.forward, rules: ir.forward.rules.map(answered) } } : {}) };
}

/** `withAnswer` over policy semantics, for the reference evaluator (the property tests compare the two). */
export function withAnswerReference(p: ResolvedPolicy, name: string, addresses: { family: Family; value: bigint }[]): ResolvedPolicy {
  if (!p.dns.proxy) return p;
  const allow = p.allow.map((r) => {
    if (!(r.dnsNames ?? []).some((pattern) => nameMatches(pattern, name))) return r;
    const mine = addresses.filter((a) => r.families.includes(a.family));
    return { ...r, to: [...(r.to ?? []), ...mine.map((a) => ({ family: a.family, lo: a.value, hi: a.value, text: name, span: r.ref.span, host: name }))] };
  });
  return { ...p, allow };
}

function mergeInto(a: IrInterval[], b: IrInterval[]): IrInterval[] {
  const items = [...a, ...b].map((x) => ({ lo: x.lo, hi: x.hi, src: [...x.src] })).sort((x, y) => (x.lo < y.lo ? -1 : x.lo > y.lo ? 1 : 0));
  const out: IrInterval[] = [];
  for (const x of items) {
    const last = out[out.length - 1];
    if (last && x.lo <= last.hi + 1n) {
      if (x.hi > last.hi) last.hi = x.hi;
      for (const s of x.src) if (!last.src.includes(s)) last.src.push(s);
    } else out.push(x);
  }
  for (const x of out) x.src.sort((p, q) => p - q);
  return out;
}

/**
 * An address of `family` that no rule or except of the IR names, to stand
 * for "an address the forwarder answered" when explain cannot resolve the
 * name itself; undefined when every address is named somewhere.
 */
export function unnamedAddress(ir: Ir, family: Family): bigint | undefined {
  const xs = ir.rules
    .filter((r) => r.family === family)
    .flatMap((r) => [r, ...r.except].flatMap((m) => m.dst ?? []))
    .sort((a, b) => (a.lo < b.lo ? -1 : a.lo > b.lo ? 1 : 0));
  // Start past the loopback and unspecified ranges, where the builtins would decide instead.
  let v = family === 'ipv4' ? 0x80000000n : 1n << 125n;
  const max = family === 'ipv4' ? (1n << 32n) - 1n : (1n << 128n) - 1n;
  for (const x of xs) {
    if (x.hi < v) continue;
    if (x.lo > v) break;
    v = x.hi + 1n;
  }
  return v <= max ? v : undefined;
}
