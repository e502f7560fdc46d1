/**
 * What egress owns in the kernel right now, in a form that can be compared:
 * what each backend's `parse-live.ts` reads from the kernel's own listing,
 * and what plan/ diffs. Both sides of a diff are kernel listings, so a plan
 * compares like with like and never depends on how an emitter formats text.
 */
import type { LinuxTarget } from './types.js';

/** One rule of an owned chain. `key` is its canonical form (no handles, no packet counts): equal keys = same rule. */
export interface LiveRule {
  key: string;
  /** The rule as the loader's own listing prints it, for people. */
  text: string;
  /** The rule's comment: the policy rule name (and reason), `builtin: …` or `default: …`. */
  comment?: string;
  /** Packet and byte counts of the rule's anonymous counter (iptables rules; nft `counter` statements). */
  packets?: number;
  bytes?: number;
}

export interface LiveSet {
  /** nft type, e.g. `ipv4_addr`. */
  type: string;
  flags: string[];
  /** Elements, normalized (addresses, CIDRs `a/len`, ranges `a-b`), sorted. */
  elements: string[];
  /**
   * A `flags timeout` set (`dns.proxy`): what the DNS forwarder learned, with
   * whole seconds left (nft's JSON listing rounds down). Not part of what
   * defines the ruleset (`elements` is empty for these sets); a reload
   * carries them over so learned addresses outlive it.
   */
  learned?: { element: string; expiresSec: number }[];
}

export interface LiveCounter {
  packets: number;
  bytes: number;
}

/**
 * What egress owns live, for one backend. nft: the table `inet egress`.
 * iptables: the chains `EGRESS*` of both families' filter tables (chain names
 * are prefixed with the family, `ipv4:EGRESS`) and the jumps from OUTPUT.
 */
export interface LiveRuleset {
  backend: LinuxTarget;
  /** Whether anything egress owns is live at all. */
  present: boolean;
  /** nft: from the output chain's comment `egress: mode M, default D` (the table's, for a table an older egress loaded), when present. */
  mode?: string;
  default?: string;
  /** nft: the forward chain's settings, from its comment `egress: forward, default D, unlisted U`. */
  forward?: { default: string; unlisted: string };
  /** nft: the table's comment, when it has one. */
  comment?: string;
  chains: Map<string, LiveRule[]>;
  /** nft named sets. */
  sets: Map<string, LiveSet>;
  /** nft named counters. */
  counters: Map<string, LiveCounter>;
  /** iptables: `-A OUTPUT -j EGRESS` rules per family (1 each when healthy). */
  jumps?: { ipv4: number; ipv6: number };
  /** iptables: `-j EGRESS-FWD` jumps per family, with their chain (FORWARD or DOCKER-USER) and 1-based position in it. */
  forwardJumps?: { ipv4: { chain: string; position: number }[]; ipv6: { chain: string; position: number }[] };
  /** iptables: whether Docker's chain DOCKER-USER exists, per family (where the forward jump belongs then). */
  dockerUser?: { ipv4: boolean; ipv6: boolean };
}

/** The empty ruleset: nothing of egress is live. */
export function emptyLive(backend: LinuxTarget): LiveRuleset {
  return { backend, present: false, chains: new Map(), sets: new Map(), counters: new Map() };
}
