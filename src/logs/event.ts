/**
 * What the log reader hands to stats, learn and replay: one denied (or
 * would-be-denied) packet as the kernel or the Windows Firewall logged it,
 * plus the tally of every line read, including the ones that were not
 * events. The boundary type between `logs/` and `observe/`: the parsers
 * here produce `LogEvent`s, everything downstream consumes only them.
 */
import type { TagVerdict } from '../backends/log-tag.js';
import type { Family } from '../policy/address.js';

/**
 * - `denied`: blocked (egress tag D, P, B or U, a line of another LOG rule
 *   selected with --prefix, a Windows Firewall DROP);
 * - `would-deny`: logged and counted, not blocked: audit mode (tag d, p, b),
 *   and a forwarded flow from no source let through (tag u: `forward.unlisted:
 *   warn`, or audit mode with `unlisted: deny`), which `unlisted: deny` in
 *   enforce mode would deny — the log line cannot tell which of the two;
 * - `allowed`: a Windows Firewall ALLOW line (replay can use it: it is
 *   recorded traffic; stats never counts it).
 */
export type EventVerdict = 'denied' | 'would-deny' | 'allowed';

export type EventProto = 'tcp' | 'udp' | 'sctp' | 'icmp' | 'other';

export interface LogEvent {
  /** Milliseconds since the epoch; undefined when the line carried no usable time. */
  time?: number;
  source: 'netfilter' | 'pfirewall';
  /** The log prefix in front of the egress tag (or the whole prefix of an untagged line), as UTF-8. */
  prefix: string;
  /** The egress tag's verdict letter (see backends/log-tag.ts); absent on untagged lines. */
  tag?: TagVerdict;
  /** The rule as logged (possibly cut, ending "~hhh"); absent for the default and for untagged lines. */
  rule?: string;
  verdict: EventVerdict;
  family: Family;
  /** Source address as logged (only used to tell connection attempts apart). */
  src: string;
  /** Destination address, canonical text (IPv6 compressed: the kernel logs it expanded). */
  dst: string;
  proto: EventProto;
  /** IP protocol number (6, 17, 132, 1, 58, …). */
  protoNum: number;
  spt?: number;
  dpt?: number;
  /** ICMP or ICMPv6 type and code, in the event's family. */
  icmpType?: number;
  icmpCode?: number;
  /** ICMP echo identifier: one `ping` run keeps it, so it dedupes like a source port. */
  icmpId?: number;
  /** Socket owner, when the rule logged it (LOG --log-uid, nft `flags skuid`). */
  uid?: number;
  gid?: number;
  /** Output interface (netfilter OUT=). */
  out?: string;
  /**
   * Input interface (netfilter IN=), set only on a forwarded packet (SPEC §6:
   * a container's or VM's, routed by this host): a line with both IN= and
   * OUT= set. `src` is then the workload's address; `uid`/`gid` never are.
   */
  in?: string;
}

export interface ReadProblem {
  /** File (or "journal", "kmsg", "stdin") and 1-based line. */
  where: string;
  line: number;
  reason: string;
}

/** Every line read is counted exactly once in `lines`; the other fields sort out what it was. */
export interface ReadCounts {
  lines: number;
  /** netfilter LOG lines (IN= … OUT= …), whatever their prefix. */
  netfilter: number;
  /** Lines that became events (egress tag, or --prefix). */
  events: number;
  /** netfilter LOG lines of other rules (no egress tag, prefix not asked for). */
  other: number;
  /** Selected lines of packets that came in for this host (IN= set, OUT= empty): egress logs only what goes out or is forwarded. */
  inbound: number;
  /** Lines that looked like log records but could not be read (truncated, garbled); skipped. */
  malformed: number;
  /** Events older than --since. */
  beforeSince: number;
  /** Windows Firewall log lines that were events (DROP/ALLOW). */
  pfirewall: number;
  /** /dev/kmsg records overwritten before they could be read. */
  lost: number;
  /** Log files that were rotated or truncated while followed. */
  rotations: number;
  /** The first few malformed lines and why. */
  problems: ReadProblem[];
}

export const MAX_PROBLEMS = 20;

export function emptyCounts(): ReadCounts {
  return { lines: 0, netfilter: 0, events: 0, other: 0, inbound: 0, malformed: 0, beforeSince: 0, pfirewall: 0, lost: 0, rotations: 0, problems: [] };
}

/** Merge `b` into `a`. */
export function addCounts(a: ReadCounts, b: ReadCounts): void {
  for (const k of ['lines', 'netfilter', 'events', 'other', 'inbound', 'malformed', 'beforeSince', 'pfirewall', 'lost', 'rotations'] as const) a[k] += b[k];
  for (const p of b.problems) if (a.problems.length < MAX_PROBLEMS) a.problems.push(p);
}
