/** Matching one IR rule (or except) against a flow; shared by the linear and indexed evaluators. */
import { intervalsContain } from '../policy/address.js';
import type { IrL4, IrMatch } from '../ir/types.js';
import { ifaceMatches, ownerMatches, type Flow } from './flow.js';

export function l4Matches(l4: IrL4 | undefined, f: Flow): boolean {
  if (!l4) return true;
  if (f.proto === 'icmp') return l4.icmp === 'any' || (f.icmpType !== undefined && l4.icmp.includes(f.icmpType));
  if (f.proto === 'other') return false;
  for (const p of l4.ports) {
    if (p.proto !== f.proto) continue;
    for (const [lo, hi] of p.ranges) {
      if (f.port === undefined ? lo === 0 && hi === 65535 : lo <= f.port && f.port <= hi) return true;
    }
  }
  return false;
}

/** Everything but the destination. */
export function restMatches(m: IrMatch, f: Flow): boolean {
  if (!l4Matches(m.l4, f)) return false;
  if (m.users && !m.users.some((u) => ownerMatches(u, f.user))) return false;
  if (m.groups && !m.groups.some((g) => ownerMatches(g, f.group))) return false;
  if (m.via && !m.via.some((v) => ifaceMatches(v, f.via))) return false;
  return true;
}

export function irMatches(m: IrMatch, f: Flow): boolean {
  return (!m.dst || intervalsContain(m.dst, f.dst)) && restMatches(m, f);
}
