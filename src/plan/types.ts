/**
 * The boundary types of plan/: what egress owns in the kernel right now, in
 * a form that can be compared (`LiveRuleset`), and what `apply` would change
 * (`Plan`). Both sides of a diff are kernel listings — the desired one is the
 * artifact as the kernel itself lists it after loading it into a scratch
 * network namespace (kernel/nft.ts, kernel/iptables.ts) — so a plan compares
 * like with like and never depends on how an emitter formats its text.
 */

import type { LinuxTarget } from '../backends/types.js';

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
  /** nft: from the table comment `egress: mode M, default D`, when present. */
  mode?: string;
  default?: string;
  chains: Map<string, LiveRule[]>;
  /** nft named sets. */
  sets: Map<string, LiveSet>;
  /** nft named counters. */
  counters: Map<string, LiveCounter>;
  /** iptables: `-A OUTPUT -j EGRESS` rules per family (1 each when healthy). */
  jumps?: { ipv4: number; ipv6: number };
}

export type PlanOp = 'add' | 'remove';

export interface RuleChange {
  op: PlanOp;
  chain: string;
  text: string;
  comment?: string;
}

export interface SetChange {
  name: string;
  /** The whole set appears or goes; otherwise only elements change. */
  op: 'add' | 'remove' | 'change';
  added: string[];
  removed: string[];
}

export interface ObjectChange {
  op: PlanOp;
  /** `backend`: everything egress owns under the other backend (switching backends takes it out). */
  kind: 'chain' | 'counter' | 'jump' | 'backend';
  name: string;
}

/** What `apply` would change against what is live. Empty lists and no `table`/`mode`/`default` = nothing to do. */
export interface Plan {
  backend: LinuxTarget;
  /** Whether egress's table (nft) / chains (iptables) would be created or taken out as a whole. */
  table?: 'create' | 'remove';
  mode?: { from?: string; to?: string };
  default?: { from?: string; to?: string };
  rules: RuleChange[];
  sets: SetChange[];
  objects: ObjectChange[];
  /** Chains whose rules stay the same but whose order changes (order is meaning in a chain). */
  reordered: string[];
}

/** The empty ruleset: nothing of egress is live. */
export function emptyLive(backend: LinuxTarget): LiveRuleset {
  return { backend, present: false, chains: new Map(), sets: new Map(), counters: new Map() };
}
