/** SPEC §2 in one place: builtins, then deny (unless except), then allow, then default. */
import { ICMPV6_ND_TYPES } from '../policy/protocols.js';
import type { Policy, RuleRef } from '../policy/types.js';
import { isLoopbackFlow, type Builtin, type Decision, type Flow } from './flow.js';

type Settings = Pick<Policy, 'mode' | 'default' | 'denyVerdict' | 'builtins'>;

export function builtinFor(p: Settings, f: Flow): Builtin | undefined {
  if (p.builtins.loopback && isLoopbackFlow(f)) return 'loopback';
  if (p.builtins.established && f.established) return 'established';
  if (p.builtins.icmpv6_nd && f.family === 'ipv6' && f.proto === 'icmp' && f.icmpType !== undefined && (ICMPV6_ND_TYPES as readonly number[]).includes(f.icmpType))
    return 'icmpv6_nd';
  return undefined;
}

/** Compose a decision from the matching denies and allows (each already filtered by except). */
export function decide(p: Settings, f: Flow, denies: () => RuleRef[], allows: () => RuleRef[]): Decision {
  const b = builtinFor(p, f);
  if (b) return { verdict: 'accept', audit: p.mode === 'audit', step: 'builtin', builtin: b, rules: [] };
  return decideMatched(p, denies(), allows());
}

/** The same, for callers that already collected the matches (the indexed evaluator's hot path). */
export function decideMatched(p: Settings, d: RuleRef[], a: RuleRef[]): Decision {
  const audit = p.mode === 'audit';
  if (d.length) return { verdict: p.denyVerdict, audit, step: 'deny', rules: d };
  if (a.length) return { verdict: 'accept', audit, step: 'allow', rules: a };
  return { verdict: p.default, audit, step: 'default', rules: [] };
}
