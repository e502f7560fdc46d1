/** The naive evaluator over the IR: scan every rule of the family. The benchmark's baseline. */
import { FAMILIES, type Family } from '../policy/address.js';
import type { Ir, IrRule } from '../ir/types.js';
import { decide } from './decide.js';
import type { Decision, Flow } from './flow.js';
import { irMatches } from './ir-match.js';
import { irForwardDecision } from './forward.js';

export function linearEvaluator(ir: Ir): (f: Flow) => Decision {
  const split = (fam: Family, action: 'allow' | 'deny') => ir.rules.filter((r) => r.family === fam && r.origin.action === action);
  const lists = Object.fromEntries(FAMILIES.map((fam) => [fam, { deny: split(fam, 'deny'), allow: split(fam, 'allow') }])) as Record<
    Family,
    { deny: IrRule[]; allow: IrRule[] }
  >;
  return (f) => {
    if (f.forwarded) return irForwardDecision(ir, f, irMatches);
    const l = lists[f.family];
    return decide(
      ir,
      f,
      () => l.deny.filter((r) => irMatches(r, f) && !r.except.some((e) => irMatches(e, f))).map((r) => r.origin),
      () => l.allow.filter((r) => irMatches(r, f)).map((r) => r.origin),
    );
  };
}
