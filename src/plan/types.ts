/**
 * The boundary type of plan/: what `apply` would change (`Plan`), as the
 * difference of two `LiveRuleset`s (backends/live.ts). Both are kernel
 * listings — the desired one is the artifact as the kernel itself lists it
 * after loading it into a scratch network namespace (kernel/nft.ts,
 * kernel/iptables.ts) — so a plan compares like with like and never depends
 * on how an emitter formats its text.
 */
import type { LinuxTarget } from '../backends/types.js';

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

/** A setting (mode, default) that changes: from what is live (absent: none) to what the policy says. */
export interface SettingChange {
  from?: string;
  to?: string;
}

/** What `apply` would change against what is live. Empty lists and no `table`/`mode`/`default` = nothing to do. */
export interface Plan {
  backend: LinuxTarget;
  /** Whether egress's table (nft) / chains (iptables) would be created or taken out as a whole. */
  table?: 'create' | 'remove';
  mode?: SettingChange;
  default?: SettingChange;
  rules: RuleChange[];
  sets: SetChange[];
  objects: ObjectChange[];
  /** Chains whose rules stay the same but whose order changes (order is meaning in a chain). */
  reordered: string[];
}
