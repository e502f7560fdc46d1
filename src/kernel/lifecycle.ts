/**
 * The life cycle over the kernel: apply, rollback, remove, refresh, and the
 * recovery that makes each of them safe to interrupt. Every change of what
 * egress owns follows the same steps, under the state directory's lock:
 *
 *   1. settle: finish or undo an earlier command that died (intent record),
 *      and roll back a confirmation whose deadline passed unwatched;
 *   2. check the new ruleset against the live kernel (`nft -c`, `--test`)
 *      and have the kernel list it in a scratch namespace (its fingerprint);
 *   3. write the intent record `applying.json` (next, prior, fingerprints);
 *   4. change the kernel (one transaction per family);
 *   5. write live/previous/confirmed, then remove the intent record.
 *
 * A process killed anywhere leaves either no intent record (nothing or
 * everything was recorded) or one that the next run resolves by looking at
 * the kernel: the new ruleset is live → record it; the old one is live →
 * drop the intent; anything else (iptables, between the two families'
 * commits) → load the prior ruleset again.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { errnoText } from '../diag/errno.js';
import { MAX_POLICY_BYTES, readBounded } from '../diag/read-file.js';
import { FORWARD_CHAIN, iptablesChainNames } from '../backends/iptables/emit.js';
import { nftForwarderConfig, nftNames } from '../backends/nft/emit.js';
import type { Artifact } from '../backends/types.js';
import type { Ir } from '../ir/types.js';
import { diff, liveFingerprint, planSize } from '../plan/diff.js';
import type { Plan } from '../plan/types.js';
import type { LiveRuleset } from '../backends/live.js';
import type { LinuxTarget } from '../backends/types.js';
import { otherBackend, realKernel, type LinuxKernel, type Live, type ReadOptions } from './backend.js';
import { armWatchdog, chooseWatchdog, disarmWatchdog, watchdogAlive, type SelfCommand } from './confirm.js';
import { appendHistory, HISTORY_FILE, REFRESH_UNCHANGED, type HistoryAction, type HistoryOutcome } from './history.js';
import { sameTable, ensureDnsGroup, forwarderRunning, forwarderRunOf, forwarderSpec, forwarderUpstream, HOLD_MS, startForwarder, stopForwarder } from './forwarder.js';
import { acquireLockWaiting, LockBusyError } from './lock.js';
import { expiriesOf } from './status.js';
import { nftRefreshScript, type LoadFailure } from './nft.js';
import {
  ensureStateDir,
  noneSnapshot,
  readState,
  removeState,
  requireStateDir,
  sha256 as sha,
  StateError,
  stateFilePath,
  writeState,
  type Applying,
  type CounterRef,
  type Pending,
  type Snapshot,
} from './state.js';
import { KernelError, type Where } from './where.js';

export interface Ctx {
  w: Where;
  stateDir: string;
  env: Record<string, string | undefined>;
  now: () => Date;
  who: { user: string; uid: number };
  /** A line for the operator (stderr). */
  note: (line: string) => void;
  self: SelfCommand;
  /** What the life cycle does to the kernel; default `realKernel(w)`. Tests pass an in-memory one. */
  kernel?: LinuxKernel;
  /** Told each step as it starts (the CLI's stage line on a terminal: cli/progress.ts). */
  stage?: (what: string) => void;
}

/** The stages' words for each backend's tools. */
const TOOL = {
  nft: { list: 'nft list table inet egress', check: 'nft -c', load: 'nft -f' },
  iptables: { list: 'iptables-save', check: 'iptables-restore --test', load: 'iptables-restore' },
} as const;

/** Read what egress owns live for `b`, said as a stage. */
function readLiveStaged(ctx: Ctx, k: LinuxKernel, b: LinuxTarget, what = 'reading the live ruleset', o?: ReadOptions): Promise<Live> {
  ctx.stage?.(`${what} (${TOOL[b].list})`);
  return k.readLive(b, o);
}

/** `art` as the kernel lists it (a scratch namespace), said as a stage. */
function canonicalStaged(ctx: Ctx, k: LinuxKernel, d: Desired) {
  ctx.stage?.(`listing the new ruleset in a scratch namespace (${TOOL[d.backend].load})`);
  return k.canonical(d.backend, d.artifact);
}

function kernelOf(ctx: Ctx): LinuxKernel {
  return ctx.kernel ?? realKernel(ctx.w);
}

/** A checked, compiled policy ready to load. */
export interface Desired {
  backend: LinuxTarget;
  ir: Ir;
  artifact: Artifact;
  policyFile: string;
  policyText: string;
  policyHash: string;
}

export class LifecycleError extends Error {
  constructor(
    message: string,
    readonly failure?: LoadFailure,
  ) {
    super(message);
  }
}

/** The counters `status` reads, per policy rule and family. */
export function counterRefs(backend: LinuxTarget, ir: Ir): CounterRef[] {
  const chains = backend === 'iptables' ? iptablesChainNames(ir) : undefined;
  const host = ir.rules.map((r) => ({
    name: chains ? `${r.family}:${chains.get(r.origin.name) ?? 'EGRESS'}` : nftNames.counter(r),
    rule: r.origin.name,
    action: r.origin.action,
    family: r.family,
  }));
  const fwd = ir.forward?.rules ?? [];
  const fchains = backend === 'iptables' ? iptablesChainNames(ir, FORWARD_CHAIN, fwd) : undefined;
  return [
    ...host,
    ...fwd.map((r) => ({
      name: fchains ? `${r.family}:${fchains.get(r.origin.name) ?? FORWARD_CHAIN}` : nftNames.counter(r),
      rule: r.origin.name,
      action: r.origin.action,
      family: r.family,
      scope: 'forward' as const,
    })),
  ];
}

export function snapshotOf(ctx: Ctx, d: Desired, fingerprint: string): Snapshot {
  return {
    kind: 'ruleset',
    backend: d.backend,
    ruleset: d.artifact.text,
    rulesetHash: sha(d.artifact.text),
    fingerprint,
    policyFile: d.policyFile,
    policyHash: d.policyHash,
    policyText: d.policyText,
    mode: d.ir.mode,
    default: d.ir.default,
    hosts: d.ir.hosts,
    counters: counterRefs(d.backend, d.ir),
    ...(d.ir.dns && d.backend === 'nft' ? { dns: nftForwarderConfig(d.ir, forwarderUpstream(d.ir.dns), HOLD_MS)! } : {}),
    appliedAt: ctx.now().toISOString(),
    appliedBy: ctx.who,
  };
}

/**
 * Append to history.jsonl. By the time a command records itself, its change
 * and its state are written: a history that cannot take the line (a full
 * disk, a directory in its place) is said, not made the command's failure.
 */
function history(ctx: Ctx, action: HistoryAction, s: Pick<Snapshot, 'policyFile' | 'policyHash' | 'backend' | 'mode'> | undefined, outcome: HistoryOutcome, message?: string): void {
  try {
    appendHistory(ctx.stateDir, {
      time: ctx.now().toISOString(),
      action,
      user: ctx.who.user,
      uid: ctx.who.uid,
      policyFile: s?.policyFile ?? '',
      policyHash: s?.policyHash ?? '',
      backend: s?.backend ?? 'nft',
      mode: s?.mode ?? 'enforce',
      outcome,
      ...(message !== undefined ? { message } : {}),
    });
  } catch (e) {
    ctx.note(`egress: warning: cannot append this ${action} to ${join(ctx.stateDir, HISTORY_FILE)}: ${errnoText(e)} ("egress stats" will not see it)`);
  }
}

function artifactOf(s: Snapshot): Artifact {
  return { text: s.ruleset, lineMap: new Map() };
}

/**
 * Run `fn` holding the state directory's lock. Whatever it did or failed
 * to do, the DNS forwarder is then made to match what is live.
 */
async function withLock<T>(ctx: Ctx, fn: () => Promise<T>, waitMs?: number): Promise<T> {
  ctx.stage?.("taking the state directory's lock");
  const lock = await acquireLockWaiting(ctx.stateDir, waitMs);
  try {
    const out = await fn();
    await syncForwarder(ctx);
    return out;
  } catch (e) {
    await syncForwarder(ctx).catch((f: Error) => ctx.note(`egress: ${f.message}`));
    throw e;
  } finally {
    lock.release();
  }
}

/**
 * The DNS forwarder as what is live needs it: running with the live
 * snapshot's configuration (restarted only when that changed or it died),
 * or stopped when the live ruleset has no `dns.proxy`. Under systemd it is
 * the unit egress-dns.service, else a detached process (kernel/forwarder.ts).
 */
async function syncForwarder(ctx: Ctx): Promise<void> {
  let live: Snapshot | undefined;
  try {
    live = readState(ctx.stateDir, 'live');
  } catch {
    return; // an unreadable state leaves the forwarder as it is; the command reports the state
  }
  const want = live?.kind === 'ruleset' ? live.dns : undefined;
  const run = forwarderRunOf(ctx.env, ctx.w, ctx.self);
  if (!want) {
    await stopForwarder(ctx.w, ctx.stateDir, run);
    return;
  }
  if (forwarderRunning(ctx.stateDir) && forwarderSpec(ctx.stateDir) === JSON.stringify(want) && (await sameTable(ctx.w, ctx.stateDir))) return;
  ctx.stage?.('starting the DNS forwarder');
  await startForwarder(ctx.w, ctx.stateDir, run, want, await ensureDnsGroup(ctx.w));
}

/** Write the state files an intent record promises, then drop the record. */
function finish(ctx: Ctx, rec: Applying & Extra): void {
  try {
    if (rec.previousAfter === null) removeState(ctx.stateDir, 'previous');
    else if (rec.previousAfter) writeState(ctx.stateDir, 'previous', rec.previousAfter);
    writeState(ctx.stateDir, 'live', rec.next);
    if (rec.confirmedAfter) writeState(ctx.stateDir, 'confirmed', rec.confirmedAfter);
    if (rec.pendingAfter) writeState(ctx.stateDir, 'pending', rec.pendingAfter);
    else if (rec.replacedPending) removeState(ctx.stateDir, 'pending');
    removeState(ctx.stateDir, 'applying');
  } catch (e) {
    throw stateNotWritten(ctx, rec, e);
  }
}

/** The kernel has changed; the intent record (whole: written before the change) still says to what. */
function stateNotWritten(ctx: Ctx, rec: IntentRecord, e: unknown): LifecycleError {
  return new LifecycleError(
    `the ${rec.action} changed the kernel, but its state could not be recorded in ${ctx.stateDir} (${errnoText(e)}). Its intent record is kept: once the state directory can be written (free some space, or move aside what is in the way), the next egress command records what is live`,
  );
}

/** Drop the pending confirmation once the kernel has changed (rollback, remove): a failure there says the kernel changed. */
async function dropPendingAfter(ctx: Ctx, rec: IntentRecord): Promise<void> {
  try {
    await dropPending(ctx);
  } catch (e) {
    throw stateNotWritten(ctx, rec, e);
  }
}

/** After finish: stop the watchdog of the confirmation this change replaced (it would find nothing of its own and leave, but need not wait). */
async function stopReplaced(ctx: Ctx, rec: IntentRecord): Promise<void> {
  const old = rec.replacedPending;
  if (old && old.token !== rec.pendingAfter?.token) await disarmWatchdog(ctx.w.execer, old.watchdog);
}

/** Fields of the intent record beyond the state.ts core. */
interface Extra {
  action: HistoryAction;
  /** Backend whose listing tells which side of the change is live. */
  checkBackend: LinuxTarget;
  priorFingerprint: string;
  /** previous.json after the change: a snapshot, null = remove it, absent = keep it. */
  previousAfter?: Snapshot | null;
  /** confirmed.json after the change; absent = keep it. */
  confirmedAfter?: Snapshot;
  /** The pending confirmation this change created, if any. */
  token?: string;
  /**
   * pending.json once the change is live: this change's confirmation (its
   * watchdog armed before the kernel is touched). Written by finish, never
   * before the load: until then the confirmation this change replaces (if
   * any) stays in pending.json with its watchdog, so a change cut off
   * half-way leaves that one running to its deadline.
   */
  pendingAfter?: Pending;
  /** The confirmation awaiting when this change started, which it replaces once live (its watchdog is then stopped). */
  replacedPending?: Pending;
}

type IntentRecord = Applying & Extra;

/** Write the intent record, before the kernel is touched: a state directory that cannot take it (full, read-only) stops the change here. */
function writeIntent(ctx: Ctx, rec: IntentRecord): void {
  try {
    writeState(ctx.stateDir, 'applying', rec);
  } catch (e) {
    throw new LifecycleError(`${(e as Error).message}; the ${rec.action} did not start: nothing was changed`);
  }
}

/**
 * pending.json, or 'corrupt' when it cannot be read back. Only an unconfirmed
 * apply leaves one (confirm deletes it), so a corrupt one is an unconfirmed
 * apply whose deadline and watchdog are unknown: settle rolls it back.
 */
function readPending(ctx: Ctx): Pending | 'corrupt' | undefined {
  try {
    return readState(ctx.stateDir, 'pending');
  } catch (e) {
    if (e instanceof StateError) return 'corrupt';
    throw e;
  }
}

async function dropPending(ctx: Ctx, token?: string): Promise<void> {
  const p = readPending(ctx);
  if (p === 'corrupt') {
    // Its watchdog cannot be named; one that wakes finds nothing pending and leaves.
    removeState(ctx.stateDir, 'pending');
    return;
  }
  if (!p || (token !== undefined && p.token !== token)) return;
  await disarmWatchdog(ctx.w.execer, p.watchdog);
  removeState(ctx.stateDir, 'pending');
}

/**
 * Finish or undo a change that died half-way, then roll back a confirmation
 * whose deadline passed while its watchdog was gone. Must hold the lock.
 */
export async function settle(ctx: Ctx): Promise<void> {
  const k = kernelOf(ctx);
  const rec = readState(ctx.stateDir, 'applying') as IntentRecord | undefined;
  if (rec) {
    const cur = await k.readLive(rec.checkBackend);
    const fp = liveFingerprint(cur.live);
    const who = `an interrupted ${rec.action} (pid ${rec.pid}, started ${rec.startedAt})`;
    if (fp === rec.nextFingerprint) {
      finish(ctx, rec);
      await stopReplaced(ctx, rec);
      history(ctx, rec.action, rec.next, rec.token ? 'pending' : 'ok', `${who} had changed the kernel; recorded it`);
      ctx.note(`egress: ${who} had already changed the kernel; its state is now recorded`);
    } else {
      if (fp !== rec.priorFingerprint) {
        if (rec.prior && rec.prior.kind === 'ruleset') {
          if (rec.prior.dns) await ensureDnsGroup(ctx.w);
          const f = await k.load(rec.prior.backend, artifactOf(rec.prior), await k.readLive(rec.prior.backend));
          if (f) throw new LifecycleError(`cannot restore the ruleset from before ${who}: ${f.message}`, f);
          if (rec.prior.backend !== rec.checkBackend) await k.removeOwned(rec.checkBackend, cur);
        } else await k.removeOwned(rec.checkBackend, cur);
        ctx.note(`egress: ${who} was cut off half-way; the ruleset from before it is restored`);
      } else ctx.note(`egress: ${who} had not changed the kernel; nothing to undo`);
      // Its own watchdog (armed before the kernel) goes; a confirmation it would have replaced stays, with its watchdog.
      if (rec.pendingAfter) await disarmWatchdog(ctx.w.execer, rec.pendingAfter.watchdog);
      if (rec.token) await dropPending(ctx, rec.token);
      removeState(ctx.stateDir, 'applying');
      history(ctx, rec.action, rec.next, 'failed', `${who} was interrupted; the ruleset from before it is live`);
    }
  }
  const p = readPending(ctx);
  if (p === 'corrupt') {
    ctx.note(`egress: ${stateFilePath(ctx.stateDir, 'pending')} is corrupted; the unconfirmed apply it recorded is rolled back, to be safe`);
    await rollbackLocked(ctx, 'auto-rollback', 'pending.json was corrupted: the unconfirmed apply was rolled back');
    return;
  }
  if (p && Date.parse(p.deadline) <= ctx.now().getTime() && !(await watchdogAlive(ctx.w.execer, p.watchdog)) && process.env.EGRESS_WATCHDOG_CHILD !== '1') {
    ctx.note(`egress: the apply of ${p.appliedAt} was not confirmed by ${p.deadline} and its watchdog is gone: rolling back now`);
    await rollbackLocked(ctx, 'auto-rollback', 'the confirmation deadline passed while its watchdog was gone');
  }
}

/**
 * Settle under the lock, waiting for it: the confirm watchdog's first step.
 * apply starts the watchdog under its lock and records its confirmation when
 * the change is live; an apply cut off after the kernel changed leaves that
 * to the next settle, and the watchdog must not read pending.json before it.
 */
export async function settleWaiting(ctx: Ctx, sleep: () => Promise<void> = () => new Promise((r) => setTimeout(r, 50))): Promise<void> {
  requireStateDir(ctx.stateDir);
  for (;;) {
    try {
      await withLock(ctx, () => settle(ctx), 0);
      return;
    } catch (e) {
      if (!(e instanceof LockBusyError)) throw e;
    }
    await sleep();
  }
}

export interface ApplyOptions {
  confirmSeconds?: number;
  force?: boolean;
  /** Load the ruleset even when it is exactly what is live (counters restart, the rollback target becomes it). */
  reload?: boolean;
}

export interface ApplyResult {
  plan: Plan;
  changed: boolean;
  pending?: { deadline: string; watchdog: string };
  warnings: string[];
}

/** What plan read before compiling: the state's live record, and the live table when `readAhead` started reading it. */
export interface ReadAhead {
  state: Snapshot | undefined;
  live?: Promise<Live>;
}

/**
 * For plan: read the state's live record, and start reading the live table before the policy is compiled when egress
 * last applied this very policy file (path and bytes) on `b`. It then most likely compiles to the same text, and the
 * table's JSON listing (nft's longest pass at 100k destinations) is all plan needs: nft lists it on another core while
 * node compiles. Otherwise (another or an edited policy needs the rule text too) nothing is read ahead. Hand the result
 * to `planAgainstLive`; a listing that is never awaited (the policy did not compile) rejects unheard.
 */
export function readAhead(ctx: Ctx, b: LinuxTarget, policyFile: string): ReadAhead {
  let state: Snapshot | undefined;
  try {
    state = readState(ctx.stateDir, 'live');
  } catch {
    return { state: undefined }; // a corrupted state file does not keep plan from comparing with the kernel
  }
  let same = false;
  try {
    same = state?.kind === 'ruleset' && state.backend === b && state.policyFile === policyFile && state.policyHash === sha(readBounded(policyFile, MAX_POLICY_BYTES));
  } catch {
    /* an unreadable policy file: plan reports it in its own words */
  }
  if (!same) return { state };
  const live = kernelOf(ctx).readLive(b, { ruleText: false });
  live.catch(() => {});
  return { state, live };
}

/**
 * Compare a desired ruleset with what is live. Read-only (the scratch namespace aside). `ahead`: what `readAhead`
 * read; its listing of `d.backend` is used when the policy compiled to the text last applied (otherwise the rule text
 * is read as well).
 */
export async function planAgainstLive(ctx: Ctx, d: Desired, ahead?: ReadAhead): Promise<Plan> {
  const k = kernelOf(ctx);
  let liveState: Snapshot | undefined;
  if (ahead) liveState = ahead.state;
  else
    try {
      liveState = readState(ctx.stateDir, 'live');
    } catch {
      /* a corrupted state file does not keep plan from comparing with the kernel */
    }
  const liveSettings = liveState?.kind === 'ruleset' && liveState.backend === d.backend ? { mode: liveState.mode, default: liveState.default } : {};
  // Unless the policy compiles to the text egress last applied, the live listing cannot stand in for the scratch
  // namespace's: list the new ruleset there while the live one is read (two processes, so two cores at 100k).
  const t = TOOL[d.backend];
  const same = sameText(liveState, d);
  ctx.stage?.(same ? `reading the live ruleset (${t.list})` : `reading the live ruleset, the new one in a scratch netns (${t.load})`);
  // The same text: most likely nothing to show, so no rule text (one nft process fewer) unless the table drifted.
  let [cur, listed] = await both(same && ahead?.live ? ahead.live : k.readLive(d.backend, { ruleText: !same }), same ? undefined : k.canonical(d.backend, d.artifact));
  const unchanged = !listed && unchangedRuleset(liveState, d, cur.live);
  if (same && !unchanged) cur = await readLiveStaged(ctx, k, d.backend, 'reading the live rules');
  const want = listed ?? (unchanged ? cur.live : await canonicalStaged(ctx, k, d));
  ctx.stage?.('comparing');
  const plan = diff(cur.live, want, liveSettings, { mode: d.ir.mode, default: d.ir.default });
  const ob = otherBackend(d.backend);
  const other = k.installed(ob) ? await readLiveStaged(ctx, k, ob, `reading what egress has live in ${ob}`) : undefined;
  if (other?.live.present) plan.objects.push({ op: 'remove', kind: 'backend', name: ob });
  return plan;
}

/** Wait for both (`b` may be absent), so neither is left running; then the first failure, in order, is thrown. */
async function both<A, B>(a: Promise<A>, b: Promise<B> | undefined): Promise<[A, B | undefined]> {
  const [x, y] = await Promise.allSettled([a, b]);
  if (x.status === 'rejected') throw x.reason;
  if (y.status === 'rejected') throw y.reason;
  return [x.value, y.value];
}

export async function apply(ctx: Ctx, d: Desired, opts: ApplyOptions = {}): Promise<ApplyResult> {
  const k = kernelOf(ctx);
  ensureStateDir(ctx.stateDir);
  return withLock(ctx, async () => {
    await settle(ctx);
    const warnings: string[] = [];
    const liveState = readState(ctx.stateDir, 'live');
    const pending = readState(ctx.stateDir, 'pending');
    // The ruleset text egress last applied: most likely nothing to load or show, so no rule text (one nft process fewer).
    const same = sameText(liveState ?? undefined, d);
    // Another ruleset than the one last applied: the scratch namespace lists it whatever is live, so it starts now,
    // beside the reads (an apply that stops before it is awaited leaves it to finish and delete its namespace).
    const scratch = same ? undefined : k.canonical(d.backend, d.artifact);
    scratch?.catch(() => {});
    if (scratch) ctx.stage?.(`reading the live ruleset, the new one in a scratch netns (${TOOL[d.backend].load})`);
    let cur = await (scratch ? k.readLive(d.backend) : readLiveStaged(ctx, k, d.backend, undefined, { ruleText: false }));
    const ob = otherBackend(d.backend);
    const other = k.installed(ob) ? await readLiveStaged(ctx, k, ob, `reading what egress has live in ${ob}`) : undefined;
    const anyLive = cur.live.present || !!other?.live.present;
    if (!liveState && anyLive && !opts.force)
      throw new LifecycleError(
        `rules of egress are live that the state directory ${ctx.stateDir} has no record of; rollback could not restore them. Re-run with --force to replace them (a later rollback then removes egress's rules)`,
      );
    if (liveState?.kind === 'ruleset') {
      const l = liveState.backend === d.backend ? cur : other ?? (await k.readLive(liveState.backend));
      if (liveState.fingerprint && liveFingerprint(l.live) !== liveState.fingerprint)
        warnings.push('the live ruleset was changed outside egress since it was applied; rollback restores what egress applied, not those changes');
    }

    // The ruleset names the forwarder's group; nft resolves the name when it loads.
    if (d.ir.dns) await ensureDnsGroup(ctx.w);
    // The ruleset egress applied, live as it was applied: the kernel's listing is the one the scratch namespace would give,
    // and unless something else is to change (a reload, a pending apply, the other backend, another policy file) nothing is loaded.
    const unchanged = unchangedRuleset(liveState, d, cur.live);
    const noop = unchanged && !opts.reload && !pending && !other?.live.present && liveState?.kind === 'ruleset' && liveState.policyFile === d.policyFile && liveState.policyHash === d.policyHash;
    // Something to load after all: read the text listing too. A drifted table's rules are shown in it, and the load keeps
    // the DNS forwarder's learned sets only over a table whose comment (in the text listing alone) it recognises.
    if (same && !noop) cur = await readLiveStaged(ctx, k, d.backend, 'reading the live rules');
    let want = cur.live;
    if (!noop) {
      // The check against the live table and the scratch namespace's listing are separate processes: run them side by side.
      const t = TOOL[d.backend];
      ctx.stage?.(unchanged ? `checking with ${t.check}` : `checking with ${t.check}, listing in a scratch namespace (${t.load})`);
      const [checked, listed] = await Promise.allSettled([k.checkLoad(d.backend, d.artifact, cur), unchanged ? undefined : scratch ?? k.canonical(d.backend, d.artifact)]);
      if (checked.status === 'rejected') throw checked.reason;
      if (checked.value) {
        history(ctx, 'apply', { ...d, mode: d.ir.mode }, 'failed', checked.value.message);
        throw new LifecycleError(checked.value.message, checked.value);
      }
      if (listed.status === 'rejected') throw listed.reason;
      if (listed.value) want = listed.value;
    }
    ctx.stage?.('comparing');
    const plan = diff(cur.live, want, liveState?.kind === 'ruleset' && liveState.backend === d.backend ? { mode: liveState.mode, default: liveState.default } : {}, {
      mode: d.ir.mode,
      default: d.ir.default,
    });
    if (other?.live.present) plan.objects.push({ op: 'remove', kind: 'backend', name: ob });

    const nextFingerprint = liveFingerprint(want);
    const next = snapshotOf(ctx, d, nextFingerprint);
    if (next.dns && !next.dns.upstream.length)
      throw new LifecycleError('dns.proxy: no upstream DNS server to forward to: dns.upstream is not set, and neither /etc/resolv.conf nor systemd-resolved names a server that is not this host; nothing was changed');
    // Idempotent: the same policy over exactly what egress last applied (no drift, nothing awaiting confirmation)
    // reloads nothing, so counters, history and the rollback target stay as they are.
    if (!opts.reload && !pending && planSize(plan) === 0 && sameAsLive(liveState, d, nextFingerprint, liveFingerprint(cur.live))) {
      if (next.dns) await syncForwarder(ctx);
      return { plan, changed: false, warnings };
    }
    const prior = liveState ?? null;
    const token = opts.confirmSeconds !== undefined ? randomBytes(6).toString('hex') : undefined;
    const rec: IntentRecord = {
      action: 'apply',
      next,
      prior,
      nextFingerprint,
      priorFingerprint: liveFingerprint(cur.live),
      checkBackend: d.backend,
      pid: process.pid,
      startedAt: ctx.now().toISOString(),
      // While an earlier apply awaits confirmation, rollback keeps aiming at the last confirmed state.
      ...(pending ? {} : { previousAfter: prior ?? noneSnapshot(d.backend, ctx.who, ctx.now().toISOString()) }),
      ...(token ? { token } : { confirmedAfter: next }),
      ...(pending ? { replacedPending: pending } : {}),
    };
    writeIntent(ctx, rec);
    if (pending) ctx.note('egress: this apply replaces the one awaiting confirmation; rollback still restores the last confirmed ruleset');
    let pendingOut: ApplyResult['pending'];
    if (token) {
      const seconds = opts.confirmSeconds!;
      const deadline = new Date(ctx.now().getTime() + seconds * 1000).toISOString();
      const watchdog = await armWatchdog(ctx.w.execer, chooseWatchdog(ctx.env), ctx.self, ctx.stateDir, token, seconds);
      rec.pendingAfter = { token, deadline, appliedAt: rec.startedAt, appliedBy: ctx.who, watchdog };
      try {
        writeIntent(ctx, rec);
      } catch (e) {
        await disarmWatchdog(ctx.w.execer, watchdog);
        try {
          removeState(ctx.stateDir, 'applying');
        } catch {
          /* the record without this watchdog: the next command finds the kernel unchanged and drops it */
        }
        throw e;
      }
      pendingOut = { deadline, watchdog: watchdog.kind === 'process' ? `process ${watchdog.pid}` : `systemd unit ${watchdog.unit}.timer` };
    }

    ctx.stage?.(`loading with ${TOOL[d.backend].load}`);
    const failure = await k.load(d.backend, d.artifact, cur);
    if (failure) {
      // nft committed nothing; iptables may have committed one family: put the prior one back.
      const now = await k.readLive(d.backend);
      if (liveFingerprint(now.live) !== rec.priorFingerprint) {
        if (prior?.kind === 'ruleset' && prior.backend === d.backend) await k.load(d.backend, artifactOf(prior), now);
        else await k.removeOwned(d.backend, now);
      }
      if (rec.pendingAfter) await disarmWatchdog(ctx.w.execer, rec.pendingAfter.watchdog);
      removeState(ctx.stateDir, 'applying');
      history(ctx, 'apply', next, 'failed', failure.message);
      throw new LifecycleError(failure.message, failure);
    }
    if (other?.live.present) {
      ctx.stage?.(`taking egress's rules out of ${ob}`);
      await k.removeOwned(ob, other);
    }
    // The verifying listing (only its fingerprint is compared) and the state's writing are independent, and at 100,000
    // destinations each takes a third of a second: nft lists while node writes. The state records the load either way.
    ctx.stage?.(`verifying (${TOOL[d.backend].list}), recording the state`);
    const verified = k.readLive(d.backend, { ruleText: false });
    verified.catch(() => {}); // awaited below, unless the state could not be written
    finish(ctx, rec);
    // The load succeeded and is recorded: a listing that fails now is said, and the apply goes on (the forwarder below).
    const after = await verified.catch((e: unknown) => void warnings.push(`the loaded ruleset could not be listed to verify it (${(e as Error).message}); check "egress plan"`));
    if (after && liveFingerprint(after.live) !== nextFingerprint) warnings.push('the kernel lists the loaded ruleset differently from the scratch namespace; check "egress plan"');
    await stopReplaced(ctx, rec);
    history(ctx, 'apply', next, token ? 'pending' : 'ok', token ? `awaiting confirmation until ${pendingOut!.deadline}` : undefined);
    if (next.dns) {
      // The ruleset sends every DNS query to the forwarder: without it, this host resolves nothing. Undo rather than leave that.
      try {
        await syncForwarder(ctx);
      } catch (e) {
        const why = (e as Error).message;
        await rollbackLocked(ctx, 'rollback', why);
        throw new LifecycleError(`${why}; the ruleset from before this apply is restored`);
      }
    }
    return { plan, changed: true, warnings, ...(pendingOut ? { pending: pendingOut } : {}) };
  });
}

/**
 * Whether `d` compiles to exactly the ruleset text egress last applied, and
 * the kernel still holds it as it did then (its listing has the fingerprint
 * recorded at that apply). Then the kernel's listing is what listing `d` in a
 * scratch namespace would give, and plan and apply skip that namespace (at
 * 100,000 destinations most of their time: BENCHMARKS.md, "Unchanged plan").
 */
function unchangedRuleset(live: Snapshot | undefined, d: Desired, kernel: LiveRuleset): boolean {
  return live?.kind === 'ruleset' && sameText(live, d) && !!live.fingerprint && liveFingerprint(kernel) === live.fingerprint;
}

/** Whether `d` compiles to exactly the ruleset text egress last applied on its backend (what the live table then holds is another question). */
function sameText(live: Snapshot | undefined, d: Desired): boolean {
  return live?.kind === 'ruleset' && live.backend === d.backend && live.rulesetHash === sha(d.artifact.text);
}

/** Whether `d` is what the state says is live and the kernel holds exactly that (the same policy file and text, backend and ruleset). */
function sameAsLive(live: Snapshot | undefined, d: Desired, nextFingerprint: string, kernelFingerprint: string): boolean {
  return (
    live?.kind === 'ruleset' &&
    live.backend === d.backend &&
    live.policyFile === d.policyFile &&
    live.policyHash === d.policyHash &&
    live.fingerprint === nextFingerprint &&
    kernelFingerprint === nextFingerprint
  );
}

/** Keep the pending apply: stop its watchdog and make it the ruleset boot restores. */
export async function confirm(ctx: Ctx): Promise<{ snapshot: Snapshot; late: boolean }> {
  requireStateDir(ctx.stateDir);
  return withLock(ctx, async () => {
    await settle(ctx);
    const p = readState(ctx.stateDir, 'pending');
    if (!p) {
      const last = readState(ctx.stateDir, 'live');
      throw new LifecycleError(last ? 'nothing to confirm: no apply is awaiting confirmation (it was confirmed, rolled back, or applied without --confirm)' : 'nothing to confirm: nothing has been applied');
    }
    const live = readState(ctx.stateDir, 'live');
    if (!live) throw new LifecycleError('the pending apply has no recorded ruleset; run "egress status"');
    // Past the deadline the rollback is due (the watchdog is about to run it, or settle just did): no late confirm.
    if (Date.parse(p.deadline) <= ctx.now().getTime()) throw new LifecycleError(`too late: the deadline ${p.deadline} has passed; the previous ruleset is being restored`);
    // Recorded before the watchdog is stopped: a confirm that cannot write leaves the watchdog to roll back, as if never run.
    writeState(ctx.stateDir, 'confirmed', live);
    await disarmWatchdog(ctx.w.execer, p.watchdog);
    removeState(ctx.stateDir, 'pending');
    history(ctx, 'confirm', live, 'ok');
    return { snapshot: live, late: false };
  });
}

/** Restore previous.json (rollback, or the watchdog with its token). */
export async function rollback(ctx: Ctx, auto?: { token: string }): Promise<{ restored?: Snapshot; skipped?: string }> {
  requireStateDir(ctx.stateDir);
  return withLock(ctx, async () => {
    await settle(ctx);
    if (auto) {
      const p = readState(ctx.stateDir, 'pending');
      if (!p || p.token !== auto.token) return { skipped: 'the apply was confirmed, rolled back or replaced before its deadline' };
      return { restored: await rollbackLocked(ctx, 'auto-rollback', `not confirmed by ${p.deadline}`) };
    }
    return { restored: await rollbackLocked(ctx, 'rollback') };
  });
}

async function rollbackLocked(ctx: Ctx, action: 'rollback' | 'auto-rollback', message?: string): Promise<Snapshot> {
  const k = kernelOf(ctx);
  const prev = readState(ctx.stateDir, 'previous');
  if (!prev) throw new LifecycleError(`no previous ruleset to roll back to in ${ctx.stateDir} (nothing was applied over another ruleset, or it was already rolled back)`);
  const liveState = readState(ctx.stateDir, 'live');
  const liveBackend = liveState?.backend ?? prev.backend;
  const checkBackend = prev.kind === 'ruleset' ? prev.backend : liveBackend;
  const cur = await k.readLive(checkBackend);
  const rec: IntentRecord = {
    action,
    next: prev,
    prior: liveState ?? null,
    nextFingerprint: prev.kind === 'ruleset' ? prev.fingerprint : liveFingerprint({ ...cur.live, present: false }),
    priorFingerprint: liveFingerprint(cur.live),
    checkBackend,
    pid: process.pid,
    startedAt: ctx.now().toISOString(),
    previousAfter: null,
    confirmedAfter: prev,
  };
  writeIntent(ctx, rec);
  if (prev.kind === 'ruleset') {
    if (prev.dns) await ensureDnsGroup(ctx.w);
    const f = await k.load(prev.backend, artifactOf(prev), cur);
    if (f) {
      removeState(ctx.stateDir, 'applying');
      history(ctx, action, prev, 'failed', f.message);
      throw new LifecycleError(`cannot restore the previous ruleset: ${f.message}`, f);
    }
  } else await k.removeOwned(checkBackend, cur);
  if (liveState && liveState.backend !== checkBackend) await k.removeOwned(liveState.backend, await k.readLive(liveState.backend));
  await dropPendingAfter(ctx, rec);
  finish(ctx, rec);
  history(ctx, action, prev.kind === 'ruleset' ? prev : liveState ?? prev, 'ok', message ?? (prev.kind === 'none' ? 'nothing of egress was live before: removed' : undefined));
  return prev;
}

/** Take out everything egress owns, in both backends. */
export async function remove(ctx: Ctx): Promise<{ removed: LinuxTarget[] }> {
  const k = kernelOf(ctx);
  ensureStateDir(ctx.stateDir);
  return withLock(ctx, async () => {
    await settle(ctx);
    let liveState: Snapshot | undefined;
    try {
      liveState = readState(ctx.stateDir, 'live');
    } catch (e) {
      ctx.note(`egress: ${(e as Error).message}; removing what is live anyway`);
    }
    const lives = new Map<LinuxTarget, Live>();
    for (const b of ['nft', 'iptables'] as const) if (k.installed(b)) lives.set(b, await k.readLive(b));
    const present = [...lives].filter(([, l]) => l.live.present).map(([b]) => b);
    const checkBackend = liveState?.backend ?? present[0] ?? 'nft';
    const cur = lives.get(checkBackend) ?? (await k.readLive(checkBackend));
    const none = noneSnapshot(checkBackend, ctx.who, ctx.now().toISOString());
    const rec: IntentRecord = {
      action: 'remove',
      next: none,
      prior: liveState ?? null,
      nextFingerprint: liveFingerprint({ ...cur.live, present: false }),
      priorFingerprint: liveFingerprint(cur.live),
      checkBackend,
      pid: process.pid,
      startedAt: ctx.now().toISOString(),
      ...(liveState?.kind === 'ruleset' ? { previousAfter: liveState } : {}),
      confirmedAfter: none,
    };
    writeIntent(ctx, rec);
    for (const b of present) await k.removeOwned(b, lives.get(b)!);
    await dropPendingAfter(ctx, rec);
    finish(ctx, rec);
    history(ctx, 'remove', liveState?.kind === 'ruleset' ? liveState : none, 'ok', present.length ? undefined : 'nothing of egress was live');
    return { removed: present };
  });
}

export interface RefreshResult {
  changed: boolean;
  sets: Plan['sets'];
  /** iptables has no sets: its chains were reloaded (atomically per family; counters restart). */
  reloaded: boolean;
}

/** Re-resolved hostnames into the live ruleset: nft sets in place, iptables chains reloaded. */
export async function refresh(ctx: Ctx, d: Omit<Desired, 'backend'>): Promise<RefreshResult> {
  const k = kernelOf(ctx);
  requireStateDir(ctx.stateDir);
  return withLock(ctx, async () => {
    await settle(ctx);
    const liveState = readState(ctx.stateDir, 'live');
    if (!liveState || liveState.kind !== 'ruleset') throw new LifecycleError('nothing to refresh: no policy is applied');
    if (liveState.policyHash !== d.policyHash)
      throw new LifecycleError(`${d.policyFile} is not the applied policy (${liveState.policyFile}, ${liveState.policyHash.slice(0, 19)}…); refresh only re-resolves the applied one: use "egress apply" for a changed policy`);
    const backend = liveState.backend;
    const full: Desired = { ...d, backend };
    const cur = await k.readLive(backend);
    if (liveState.fingerprint && liveFingerprint(cur.live) !== liveState.fingerprint)
      throw new LifecycleError('the live ruleset was changed outside egress since it was applied; run "egress plan" and "egress apply" first');
    let script: string | undefined;
    if (backend === 'nft') {
      script = nftRefreshScript(d.ir, liveState.ruleset);
      if (script === undefined) {
        // The likeliest cause since rules carry their end: one expired, so this load of the policy leaves it out.
        const expired = expiriesOf(liveState.policyFile, liveState.policyText, ctx.now()).filter((e) => e.past);
        if (expired.length)
          throw new LifecycleError(
            `${expired.map((e) => `rule ${e.rule} expired on ${e.expires}`).join(', ')}: the kernel stopped admitting ${expired.length === 1 ? 'it' : 'them'} at the end of that day; run "egress apply ${liveState.policyFile}" to take ${expired.length === 1 ? 'it' : 'them'} out of the ruleset (refresh only updates addresses)`,
          );
        throw new LifecycleError('re-resolving changed more than set elements (a rule gained or lost an address family); run "egress apply" to load it');
      }
    }
    const want = await k.canonical(backend, d.artifact);
    const plan = diff(cur.live, want);
    const pending = readState(ctx.stateDir, 'pending');
    const next = { ...snapshotOf(ctx, full, liveFingerprint(want)), appliedAt: liveState.appliedAt, appliedBy: liveState.appliedBy };
    if (!plan.sets.length && !plan.rules.length && !plan.objects.length && !plan.reordered.length) {
      writeState(ctx.stateDir, 'live', next);
      if (!pending) writeState(ctx.stateDir, 'confirmed', next);
      history(ctx, 'refresh', next, 'ok', REFRESH_UNCHANGED);
      return { changed: false, sets: [], reloaded: false };
    }
    const rec: IntentRecord = {
      action: 'refresh',
      next,
      prior: liveState,
      nextFingerprint: liveFingerprint(want),
      priorFingerprint: liveFingerprint(cur.live),
      checkBackend: backend,
      pid: process.pid,
      startedAt: ctx.now().toISOString(),
      ...(pending ? {} : { confirmedAfter: next }),
    };
    writeIntent(ctx, rec);
    if (script !== undefined) {
      try {
        await k.loadNftScript(script);
      } catch (e) {
        removeState(ctx.stateDir, 'applying');
        history(ctx, 'refresh', next, 'failed', (e as Error).message);
        throw new LifecycleError(`refresh failed: ${(e as KernelError).message}`);
      }
    } else {
      const f = await k.load(backend, d.artifact, cur);
      if (f) {
        removeState(ctx.stateDir, 'applying');
        history(ctx, 'refresh', next, 'failed', f.message);
        throw new LifecycleError(f.message, f);
      }
    }
    finish(ctx, rec);
    const changedSets = plan.sets.map((s) => `${s.name} ${[...s.added.map((e) => '+' + e), ...s.removed.map((e) => '-' + e)].join(' ')}`);
    history(ctx, 'refresh', next, 'ok', backend === 'nft' ? `sets updated: ${changedSets.join('; ')}` : 'chains reloaded');
    return { changed: true, sets: plan.sets, reloaded: backend === 'iptables' };
  });
}
