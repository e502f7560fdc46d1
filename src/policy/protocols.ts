import type { Family } from './address.js';

export const L4_PROTOS = ['tcp', 'udp', 'sctp'] as const;
export type L4Proto = (typeof L4_PROTOS)[number];
export const PROTO_NUMBER: Record<L4Proto | 'icmp' | 'icmpv6', number> = { tcp: 6, udp: 17, sctp: 132, icmp: 1, icmpv6: 58 };

/**
 * Family-neutral ICMP type names → the type number in each family
 * (undefined where the family has no such type: such a rule half is empty).
 */
export const ICMP_TYPES: Record<string, { ipv4?: number; ipv6?: number }> = {
  'echo-reply': { ipv4: 0, ipv6: 129 },
  'destination-unreachable': { ipv4: 3, ipv6: 1 },
  'packet-too-big': { ipv6: 2 },
  'time-exceeded': { ipv4: 11, ipv6: 3 },
  'parameter-problem': { ipv4: 12, ipv6: 4 },
  redirect: { ipv4: 5, ipv6: 137 },
  'echo-request': { ipv4: 8, ipv6: 128 },
  'router-advertisement': { ipv4: 9, ipv6: 134 },
  'router-solicitation': { ipv4: 10, ipv6: 133 },
  'timestamp-request': { ipv4: 13 },
  'timestamp-reply': { ipv4: 14 },
  'neighbor-solicitation': { ipv6: 135 },
  'neighbor-advertisement': { ipv6: 136 },
};

/** Accepted spellings that mean the same type. */
export const ICMP_ALIASES: Record<string, string> = {
  ping: 'echo-request',
  pong: 'echo-reply',
  'neighbour-solicitation': 'neighbor-solicitation',
  'neighbour-advertisement': 'neighbor-advertisement',
};

/** ICMPv6 types the `icmpv6_nd` builtin accepts: NDP (RFC 4861) and MLD (RFC 2710, 3810). */
export const ICMPV6_ND_TYPES = [130, 131, 132, 133, 134, 135, 136, 137, 143] as const;

export function icmpTypeNumber(name: string, family: Family): number | undefined {
  return ICMP_TYPES[name]?.[family];
}

/** Reverse map for printing: the family-neutral name of a type number. */
export function icmpTypeName(family: Family, type: number): string {
  for (const [n, t] of Object.entries(ICMP_TYPES)) if (t[family] === type) return n;
  return String(type);
}
