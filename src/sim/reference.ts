/**
 * The reference evaluator: SPEC §2 read literally over the resolved policy,
 * one rule at a time. Slow on purpose and obviously right; it is the oracle
 * the IR evaluators and the kernel are compared against.
 */
import { icmpTypeNumber } from '../policy/protocols.js';
import type { ResolvedPolicy, ResolvedRule, ResolvedSelectors } from '../resolve/types.js';
import { HOST_SOURCE } from '../policy/types.js';
import { decideForward, policySources, UNGOVERNED } from './forward.js';
import { decide } from './decide.js';
import { ifaceMatches, ownerMatches, type Decision, type Flow } from './flow.js';

export function matchesSelectors(s: ResolvedSelectors, f: Flow): boolean {
  if (!s.families.includes(f.family)) return false;
  if (s.to && !s.to.some((d) => d.family === f.family && d.lo <= f.dst && f.dst <= d.hi)) return false;
  if (s.ports || s.icmp) {
    const portHit = (s.ports ?? []).some(
      (p) => p.proto === f.proto && (f.port === undefined ? p.lo === 0 && p.hi === 65535 : p.lo <= f.port && f.port <= p.hi),
    );
    const icmpHit =
      f.proto === 'icmp' && (s.icmp ?? []).some((i) => i.name === 'any' || (f.icmpType !== undefined && icmpTypeNumber(i.name, f.family) === f.icmpType));
    if (!portHit && !icmpHit) return false;
  }
  if (s.users && !s.users.some((u) => ownerMatches(u, f.user))) return false;
  if (s.groups && !s.groups.some((g) => ownerMatches(g, f.group))) return false;
  if (s.via && !s.via.some((v) => ifaceMatches(v.name, f.via))) return false;
  return true;
}

export function explainReference(p: ResolvedPolicy, f: Flow): Decision {
  if (f.forwarded) {
    const fwd = p.forward;
    if (!fwd) return decideForward(p, UNGOVERNED, f, () => [], () => []);
    const governs = (r: ResolvedRule, sources: string[]) => r.from.some((x) => sources.includes(x.name));
    return decideForward(
      { mode: p.mode, builtins: p.builtins, dnsProxy: p.dns.proxy },
      { ...fwd, sources: policySources(fwd) },
      f,
      (s) => p.deny.filter((r) => governs(r, s) && matchesSelectors(r, f) && !r.except.some((e) => matchesSelectors(e, f))).map((r) => r.ref).sort(byName),
      (s) => p.allow.filter((r) => governs(r, s) && matchesSelectors(r, f)).map((r) => r.ref).sort(byName),
    );
  }
  const host = (r: ResolvedRule) => r.from.some((x) => x.name === HOST_SOURCE);
  return decide(
    p,
    f,
    () => p.deny.filter((r) => host(r) && matchesSelectors(r, f) && !r.except.some((e) => matchesSelectors(e, f))).map((r) => r.ref).sort(byName),
    () => p.allow.filter((r) => host(r) && matchesSelectors(r, f)).map((r) => r.ref).sort(byName),
  );
}

function byName(a: { name: string }, b: { name: string }): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}
