/**
 * The Windows CE FW_RULE model, shared by the `wince` (.reg) and `wince-c`
 * (C source) targets: constants from fwapi.h, the byte encoding of
 * FW_IP_ADDRESS, and the field set of one rule. Both writers print the same
 * FwRule list, so the registry and the C program can never disagree.
 *
 * Values are from the FW_RULE, FW_RULE_FLAGS, FW_RULE_MASKS, FW_ACTIONS and
 * FW_IP_ADDRESS pages of the Windows CE 5.0 / Embedded CE 6.0 documentation
 * (fwapi.h); see docs/backends-windows.md.
 */
import type { Family } from '../../policy/address.js';
import type { RuleRef } from '../../policy/types.js';

export const FWF = { BLOCK: 0x01, ALLOW: 0x02, LOG: 0x04, INBOUND: 0x08, OUTBOUND: 0x10, DISABLED: 0x20 } as const;

/** In FW_RULE field order, so a mask's comment reads like the documentation's ("FWM_PRIVATE_HOST | FWM_PROTOCOL | FWM_PORT"). */
export const FWM = {
  PRIVATE_HOST: 0x0001,
  PUBLIC_HOST: 0x0002,
  PUBLIC_HOST_MASK: 0x0800,
  PUBLIC_HOST_PREFIX: 0x1000,
  PROTOCOL: 0x0020,
  ACTION: 0x0040,
  PORT: 0x0004,
  TYPE: 0x0008,
  CODE: 0x0010,
} as const;

/** FW_ACTIONS, for the Action field of logging rules. */
export const FWA = { BLOCK: 0x01, ALLOW: 0x02 } as const;

/** Address family numbers as Windows (and CE) winsock defines them: AF_INET6 is 23 there, not Linux's 10. */
export const AF: Record<Family, number> = { ipv4: 2, ipv6: 23 };

export interface FwAddress {
  family: Family;
  value: bigint;
}

/** One FW_RULE, outbound only. */
export interface FwRule {
  /** Registry key name under HKLM\COMM\Firewall\Rules, also the C variable's stem. */
  key: string;
  /** The policy rule it came from; absent for the default block and the log rule. */
  origin?: RuleRef;
  kind: 'allow' | 'block' | 'log';
  /** What the rule is for, as the operator wrote it (reason) or generated. */
  description: string;
  privateHost: FwAddress;
  /** A public host or subnet; absent = any public host. */
  publicHost?: { value: bigint; prefix: number };
  protocol?: number;
  /** Inclusive; only for TCP and UDP (FWM_PORT). */
  ports?: [number, number];
  icmpType?: number;
}

export function fwFlags(r: FwRule): number {
  const action = r.kind === 'allow' ? FWF.ALLOW : r.kind === 'block' ? FWF.BLOCK : FWF.LOG;
  return action | FWF.OUTBOUND;
}

export function fwMask(r: FwRule): number {
  let m = FWM.PRIVATE_HOST;
  if (r.publicHost) {
    m |= FWM.PUBLIC_HOST;
    if (r.publicHost.prefix < bitsOf(r.privateHost.family)) m |= r.privateHost.family === 'ipv4' ? FWM.PUBLIC_HOST_MASK : FWM.PUBLIC_HOST_PREFIX;
  }
  if (r.protocol !== undefined) m |= FWM.PROTOCOL;
  if (r.ports) m |= FWM.PORT;
  if (r.icmpType !== undefined) m |= FWM.TYPE;
  if (r.kind === 'log') m |= FWM.ACTION;
  return m;
}

/** The names of the bits set in a mask or flags value, in the table's order. */
export function bitNames(value: number, table: Record<string, number>, prefix: string): string {
  return Object.entries(table)
    .filter(([, bit]) => (value & bit) !== 0)
    .map(([n]) => prefix + n)
    .join(' | ');
}

export function bitsOf(f: Family): number {
  return f === 'ipv4' ? 32 : 128;
}

/** Network-order address bytes. */
export function addressBytes(a: FwAddress): number[] {
  const n = bitsOf(a.family) / 8;
  const out: number[] = [];
  for (let i = n - 1; i >= 0; i--) out.push(Number((a.value >> BigInt(i * 8)) & 0xffn));
  return out;
}

/**
 * FW_IP_ADDRESS as stored in the registry: USHORT Family (little-endian), two
 * bytes of padding (the union with IN_ADDR is 4-byte aligned), then the
 * address in network order — `02,00,00,00,C0,A8,00,65` for 192.168.0.101,
 * exactly as the documentation's example writes it.
 */
export function fwAddressBytes(a: FwAddress): number[] {
  const af = AF[a.family];
  return [af & 0xff, af >> 8, 0, 0, ...addressBytes(a)];
}

/** The network mask of a prefix, network order (PublicHostMask, IPv4). */
export function maskBytes(prefix: number): number[] {
  const m = prefix === 0 ? 0n : ((1n << 32n) - 1n) ^ ((1n << BigInt(32 - prefix)) - 1n);
  return addressBytes({ family: 'ipv4', value: m });
}

/** Protocol numbers named the way the documentation's example comments them. */
export const PROTOCOL_NAMES: Record<number, string> = { 1: 'IP_PROTOCOL_ICMP', 6: 'IP_PROTOCOL_TCP', 17: 'IP_PROTOCOL_UDP', 58: 'IP_PROTOCOL_ICMPV6', 132: 'IP_PROTOCOL_SCTP' };
