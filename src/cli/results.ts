/**
 * The `result` of each command's `--json` envelope (envelope.ts), one type
 * per command. The build writes a JSON Schema for each from these types
 * (scripts/write-json-schemas.mjs → schema/json/COMMAND.schema.json), and
 * the tests validate every command's output against those files
 * (test/json.ts). docs/json.md describes them.
 */
import type { JsonDiagnostic } from '../diag/render.js';
import type { ForwardView } from '../kernel/forward-view.js';
import type { LoggingCounts, Status } from '../kernel/status.js';
import type { SourceSuggestion } from '../kernel/forward-host.js';
import type { DnsReadCounts } from '../logs/dns-log.js';
import type { SetChange } from '../plan/types.js';
import type { Answer } from '../report/explain.js';
import type { ReportData } from '../report/html-data.js';
import type { LabJson } from '../report/lab.js';
import type { LearnJson } from '../report/learn.js';
import type { PlanJson } from '../report/plan.js';
import type { ReplayJson } from '../report/replay.js';
import type { StaleJson } from '../report/stale.js';
import type { StatsJson } from '../report/stats.js';

/** `init`: the starter policy written (`init -`: printed here, not written). */
export interface InitResult {
  file: string;
  written: boolean;
  /** `init -`: the policy's text. */
  policy?: string;
  /** `--detect`: the container and VM networks found on this host. */
  detected?: SourceSuggestion[];
}

/** `check`: what the policy holds; its findings are the envelope's diagnostics. */
export interface CheckResult {
  file: string;
  errors: number;
  warnings: number;
  rules: { allow: number; deny: number };
  /** Destination addresses and ranges over all rules and both families (each a rule of its own on iptables, an element of a set on nft). */
  destinations: number;
  /** `dns.proxy`: the upstream servers the forwarder will ask, and where they came from. */
  dns?: { proxy: true; upstream: string[]; from: string };
}

/** `compile`: the ruleset text for the target. */
export interface CompileResult {
  target: string;
  text: string;
}

/**
 * `explain`: always a list of answers: one per flow (`--to` a name: one per
 * address it resolves to; `--flows`: one per flow of the file).
 */
export type ExplainResult = Answer[];

/** `lab`: every probe, what explain predicted and what each backend's kernel did. */
export type LabResult = LabJson;

/** `plan`: what apply would change against the live ruleset, and the forwarded-traffic view. */
export interface PlanResult extends PlanJson {
  file: string;
  forward: ForwardView;
}

/** A change that is waiting for `egress confirm`. */
export interface PendingConfirm {
  deadline: string;
  watchdog: string;
}

/** `apply`: what was made (`changed: false`: nothing, the live ruleset was the policy already). */
export interface ApplyResult {
  file: string;
  backend: 'nft' | 'iptables';
  mode: 'enforce' | 'audit';
  policyHash: string;
  changed: boolean;
  plan: PlanJson;
  /** `--confirm`: the deadline and the watchdog; null without. */
  pending: PendingConfirm | null;
  /** What the apply warned about (also on standard error in text mode). */
  warnings: string[];
  forward: ForwardView;
}

/** What a confirm or rollback acted on: a recorded ruleset. */
export interface AppliedRuleset {
  policyFile: string;
  policyHash: string;
  backend: string;
  mode: string;
  appliedAt: string;
}

/** `confirm`: the ruleset kept, and whether boot restore (`egress persist`) will bring it back. */
export interface ConfirmResult {
  confirmed: AppliedRuleset;
  restoredAtBoot: boolean;
}

/** `rollback`: the ruleset restored (null: nothing of egress was live before, so egress was removed). */
export interface RollbackResult {
  restored: AppliedRuleset | null;
}

/** `remove`: what was taken out (nft tables, iptables chains and jumps). */
export interface RemoveResult {
  removed: string[];
}

/** `status`: what is live (`active: false`, `applied: false`: nothing of egress is). */
export interface StatusResult extends Status {
  active: boolean;
}

/** `refresh`: one round (with `--watch`, one envelope per round, one per line). */
export interface RefreshResult {
  file: string;
  time: string;
  changed: boolean;
  /** iptables has no sets: changed addresses reload the chains. */
  reloaded: boolean;
  sets: SetChange[];
  /** Hostnames that did not resolve this round (their last known addresses are kept). */
  stale: string[];
}

/** `persist --off`: what was removed. */
export interface PersistOffResult {
  persist: false;
  removed: string[];
}

/** `persist`: the units (or ifupdown hook) that restore the confirmed ruleset at boot. */
export interface PersistOnResult {
  /** Whether anything will restore it at boot (false: no systemd and no ifupdown). */
  persist: boolean;
  files: string[];
  policyFile: string;
  dns: boolean;
  packaged?: string;
  replaced?: string[];
  overrides?: string[];
  notPackaged?: string;
  bootedBySystemd?: false;
  ifupdownHook?: string;
}

export type PersistResult = PersistOnResult | PersistOffResult;

/** `stats --sample`: the counters appended to the samples file. */
export interface StatsSample {
  sample: { file: string; counters: number };
}

/** `stats`: the denial report (with `--follow`, one envelope per line and interval); `--sample`: what was recorded. */
export type StatsResult = StatsJson | StatsSample;

/** `learn`: the rules proposed, as data and as YAML to review. */
export interface LearnResult extends LearnJson {
  /** The DNS forwarder's log lines read (`--dns-log`, or the policy's forwarder). */
  dnsLog?: DnsReadCounts;
  /** Reading this host's kernel log: denials the log rate limit kept out of it. */
  logging?: LoggingCounts;
}

export type ReplayResult = ReplayJson;

export type StaleResult = StaleJson;

/** `report`: the HTML page written, and the data drawn on it. */
export interface ReportResult {
  /** The page's path. */
  file: string;
  bytes: number;
  data: ReportData;
}

/** Every command that takes `--json`, and its result's type. */
export interface Results {
  init: InitResult;
  check: CheckResult;
  compile: CompileResult;
  explain: ExplainResult;
  lab: LabResult;
  plan: PlanResult;
  apply: ApplyResult;
  confirm: ConfirmResult;
  rollback: RollbackResult;
  remove: RemoveResult;
  status: StatusResult;
  refresh: RefreshResult;
  persist: PersistResult;
  stats: StatsResult;
  learn: LearnResult;
  replay: ReplayResult;
  stale: StaleResult;
  report: ReportResult;
}

/** What scripts/write-json-schemas.mjs generates from: every result, and a diagnostic of the envelope. */
export interface SchemaRoots {
  results: Results;
  diagnostic: JsonDiagnostic;
}
