/**
 * The state directory (`$EGRESS_STATE_DIR`, default /var/lib/egress): what
 * egress loaded, what `rollback` restores, what boot restores, a pending
 * confirmation, and the history. Layout: docs/lifecycle.md.
 *
 * Every state file is one JSON object `{ format, body, checksum }` where
 * checksum is `sha256:` over the JSON of `body`, written atomically (temp
 * file, fsync, rename, fsync of the directory). A file whose checksum does
 * not match, or that does not parse, is a StateError: egress refuses to act
 * on it rather than roll back to something it cannot vouch for.
 */
import { createHash } from 'node:crypto';
import { errnoText } from '../diag/errno.js';
import { lstatSync, mkdirSync, readFileSync, realpathSync, statSync, unlinkSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { LinuxTarget } from '../backends/types.js';
import type { NftForwarderConfig } from '../backends/nft/dns.js';
import type { HostEntry } from '../resolve/types.js';
import { syncDir, writeFileAtomic } from './atomic.js';

export const DEFAULT_STATE_DIR = '/var/lib/egress';
export const STATE_FORMAT = 1;

export type StateFile = 'live' | 'previous' | 'confirmed' | 'pending' | 'applying';

export class StateError extends Error {}

export function stateDirOf(env: Record<string, string | undefined>): string {
  return env.EGRESS_STATE_DIR || DEFAULT_STATE_DIR;
}

export function sha256(text: string | Buffer): string {
  return 'sha256:' + createHash('sha256').update(text).digest('hex');
}

/** Which rule a named counter (nft) or chain (iptables) counts for, so `status` can show per-rule hits. */
export interface CounterRef {
  /** nft: counter name; iptables: `ipv4:EGRESS-web`. */
  name: string;
  rule: string;
  action: 'allow' | 'deny';
  family: 'ipv4' | 'ipv6';
  /** A forward twin's counter (SPEC §6); absent = the host's. */
  scope?: 'forward';
}

/** A ruleset egress loaded (or the fact that nothing of egress was live). */
export interface Snapshot {
  kind: 'ruleset' | 'none';
  backend: LinuxTarget;
  /** The artifact text as loaded ('' for none). */
  ruleset: string;
  rulesetHash: string;
  /** liveFingerprint() of the kernel's listing right after loading; '' when not known. */
  fingerprint: string;
  policyFile: string;
  policyHash: string;
  /** The policy text as applied, so what is live can always be read back. */
  policyText: string;
  mode: 'enforce' | 'audit';
  default: 'accept' | 'reject' | 'drop';
  /** Last known good addresses of the policy's hostnames (refresh keeps them when resolution fails). */
  hosts: HostEntry[];
  counters: CounterRef[];
  /** `dns.proxy`: the DNS forwarder this ruleset needs (what it runs while the ruleset is live). */
  dns?: NftForwarderConfig;
  appliedAt: string;
  appliedBy: { user: string; uid: number };
}

/** An apply waiting for `egress confirm`. */
export interface Pending {
  token: string;
  /** ISO-8601: when the watchdog rolls back. */
  deadline: string;
  appliedAt: string;
  appliedBy: { user: string; uid: number };
  /** What will restore the previous state if nobody confirms. */
  watchdog: { kind: 'process'; pid: number; start?: string } | { kind: 'systemd'; unit: string };
}

/** An apply in progress: written before the kernel is touched, removed when the state files agree with it. */
export interface Applying {
  /** What the apply loads. */
  next: Snapshot;
  /** What was live (per egress's state) when it started. */
  prior: Snapshot | null;
  /** liveFingerprint() of `next` as the kernel lists it (from the scratch namespace). */
  nextFingerprint: string;
  pid: number;
  startedAt: string;
}

interface Bodies {
  live: Snapshot;
  previous: Snapshot;
  confirmed: Snapshot;
  pending: Pending;
  applying: Applying;
}

const FILES: Record<StateFile, string> = {
  live: 'live.json',
  previous: 'previous.json',
  confirmed: 'confirmed.json',
  pending: 'pending.json',
  applying: 'applying.json',
};

export function stateFilePath(dir: string, f: StateFile): string {
  return join(dir, FILES[f]);
}

/** Make sure the directory exists (mode 0700: it holds the policy text). */
export function ensureStateDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new StateError(`the state path ${dir} is not a directory`);
    throw new StateError(`cannot create the state directory ${dir}: ${errnoText(e)}`);
  }
  requireStateDir(dir);
}

/**
 * What root reads from the state directory goes to nft, iptables-restore and
 * kill(2), and what it writes follows whatever is there: a directory another
 * user owns or may write is refused, never used (a planted history.jsonl link
 * made root append to a 0600 file; a forged previous.json made rollback flush
 * foreign tables — the checksums are plain hashes anyone can recompute).
 */
export function stateDirProblem(st: { uid: number; mode: number }, euid: number | undefined = process.geteuid?.()): string | undefined {
  if (st.uid !== 0 && st.uid !== euid) return `is owned by uid ${st.uid}, not by root`;
  if (st.mode & 0o022) return `can be written by ${st.mode & 0o002 ? 'every user' : 'its group'} (mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')})`;
  return undefined;
}

/** Throw a StateError unless `dir` is an existing directory. */
export function requireStateDir(dir: string): void {
  let st;
  try {
    st = statSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT')
      throw new StateError(`no egress state directory at ${dir} (EGRESS_STATE_DIR): nothing was applied with it, so there is nothing to restore`);
    throw new StateError(`cannot read the state directory ${dir}: ${(e as Error).message}`);
  }
  if (!st.isDirectory()) throw new StateError(`the state path ${dir} is not a directory`);
  const problem = stateDirProblem(st);
  if (problem) throw new StateError(`refusing the state directory ${dir}: it ${problem}; what egress keeps there is loaded into the kernel as root (fix: chown root:root ${dir}; chmod 0700 ${dir})`);
  const above = statePathProblem(dir);
  if (above) throw new StateError(`refusing the state directory ${dir}: ${above}, so another user could put a link or a directory of theirs in its place; what egress keeps there is loaded into the kernel as root (fix: a state directory whose parents only root can write)`);
}

/**
 * The state directory's own owner and mode are not enough: whoever may write
 * a directory above it can rename it away and plant a link in its place (root
 * then writes wherever the link points: a planted state-path link made root
 * append to a 0600 file). Every directory above it, on the path as given and
 * on the path it resolves to, must be root's (or the runner's) and writable by
 * nobody else — unless sticky (like /tmp) with the entry below it root's.
 */
export function statePathProblem(dir: string, euid: number | undefined = process.geteuid?.()): string | undefined {
  const mine = (uid: number) => uid === 0 || uid === euid;
  const paths = [resolve(dir)];
  try {
    paths.push(realpathSync(dir));
  } catch {
    /* gone meanwhile: the path as given is still checked */
  }
  for (const path of paths) {
    for (let child = path, parent = dirname(path); parent !== child; child = parent, parent = dirname(parent)) {
      let ps, cs;
      try {
        ps = statSync(parent);
        cs = lstatSync(child);
      } catch (e) {
        return `${child} cannot be checked (${errnoText(e)})`;
      }
      if (!mine(ps.uid)) return `${parent} is owned by uid ${ps.uid}`;
      const sticky = (ps.mode & 0o1000) !== 0;
      if (ps.mode & 0o022 && !(sticky && mine(cs.uid)))
        return `${parent} can be written by ${ps.mode & 0o002 ? 'every user' : 'its group'} (mode ${(ps.mode & 0o7777).toString(8).padStart(4, '0')})${sticky ? ` and ${child} is owned by uid ${cs.uid}` : ''}`;
    }
  }
  return undefined;
}

/** Write a state file atomically; a StateError naming the file and the reason when it cannot be (a full or read-only disk, a directory in its place). */
export function writeState<K extends StateFile>(dir: string, f: K, body: Bodies[K]): void {
  // The text of JSON.stringify({ format, body, checksum }), with the body stringified once: an intent record at
  // 100,000 destinations holds the ruleset text four times (17 MB), and a second pass over it cost 30 ms.
  const json = JSON.stringify(body);
  const text = `{"format":${STATE_FORMAT},"body":${json},"checksum":${JSON.stringify(sha256(json))}}\n`;
  const path = stateFilePath(dir, f);
  try {
    writeFileAtomic(path, text, 0o600);
  } catch (e) {
    throw new StateError(`cannot write ${path}: ${errnoText(e)}`);
  }
}

export function removeState(dir: string, f: StateFile): void {
  const path = stateFilePath(dir, f);
  try {
    unlinkSync(path);
    syncDir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new StateError(`cannot remove ${path}: ${errnoText(e)}`);
  }
}

/** Read a state file: undefined when it does not exist; StateError when it is corrupted. */
export function readState<K extends StateFile>(dir: string, f: K): Bodies[K] | undefined {
  const path = stateFilePath(dir, f);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new StateError(`cannot read ${path}: ${errnoText(e)}`);
  }
  const bad = (why: string) =>
    new StateError(`state file ${path} is corrupted (${why}); egress will not act on it. Move it aside and run "egress apply POLICY" (or "egress remove") to start from a known state`);
  let doc: { format?: unknown; body?: unknown; checksum?: unknown };
  try {
    doc = JSON.parse(text) as typeof doc;
  } catch {
    throw bad('not valid JSON');
  }
  if (!doc || typeof doc !== 'object' || doc.format !== STATE_FORMAT || typeof doc.checksum !== 'string' || !doc.body || typeof doc.body !== 'object')
    throw bad(doc && typeof doc === 'object' && doc.format !== undefined && doc.format !== STATE_FORMAT ? `unknown format ${JSON.stringify(doc.format)}` : 'not an egress state file');
  if (sha256(JSON.stringify(doc.body)) !== doc.checksum) throw bad('checksum mismatch');
  const body = doc.body as Bodies[K];
  if ((f === 'live' || f === 'previous' || f === 'confirmed') && !validSnapshot(body as Snapshot)) throw bad('not a snapshot');
  if ((f === 'live' || f === 'previous' || f === 'confirmed') && sha256((body as Snapshot).ruleset) !== (body as Snapshot).rulesetHash) throw bad('ruleset hash mismatch');
  if (f === 'applying' && !validApplying(body as Applying & Record<string, unknown>)) throw bad('not an intent record');
  if (f === 'pending' && !validPending(body as Pending)) throw bad('not a pending confirmation');
  return body;
}

function validHashedSnapshot(s: unknown): boolean {
  return !!s && typeof s === 'object' && validSnapshot(s as Snapshot) && sha256((s as Snapshot).ruleset) === (s as Snapshot).rulesetHash;
}

/** The intent record as the life cycle writes it (its own fields too: action, checkBackend, priorFingerprint): a bogus one is never acted on. */
function validApplying(a: Applying & Record<string, unknown>): boolean {
  return (
    validHashedSnapshot(a.next) &&
    (a.prior === null || validHashedSnapshot(a.prior)) &&
    typeof a.nextFingerprint === 'string' &&
    typeof a.priorFingerprint === 'string' &&
    Number.isInteger(a.pid) &&
    a.pid > 0 &&
    typeof a.startedAt === 'string' &&
    typeof a.action === 'string' &&
    (a.checkBackend === 'nft' || a.checkBackend === 'iptables')
  );
}

function validPending(p: Pending): boolean {
  const w = p.watchdog as Partial<{ kind: string; pid: number; unit: string; start: string }> | undefined;
  return (
    typeof p.token === 'string' &&
    /^[0-9a-f]+$/.test(p.token) &&
    !Number.isNaN(Date.parse(p.deadline)) &&
    !!w &&
    ((w.kind === 'process' && Number.isInteger(w.pid) && w.pid! > 1 && (w.start === undefined || typeof w.start === 'string')) || (w.kind === 'systemd' && typeof w.unit === 'string' && /^egress-confirm-[0-9a-f]+$/.test(w.unit)))
  );
}

function validSnapshot(s: Snapshot): boolean {
  return (
    (s.kind === 'ruleset' || s.kind === 'none') &&
    (s.backend === 'nft' || s.backend === 'iptables') &&
    typeof s.ruleset === 'string' &&
    typeof s.rulesetHash === 'string' &&
    Array.isArray(s.hosts) &&
    Array.isArray(s.counters) &&
    (s.kind === 'none' || s.ruleset.length > 0)
  );
}

/** A snapshot of "nothing of egress is live" (what rollback restores by removing). */
export function noneSnapshot(backend: LinuxTarget, by: { user: string; uid: number }, at: string): Snapshot {
  return {
    kind: 'none',
    backend,
    ruleset: '',
    rulesetHash: sha256(''),
    fingerprint: '',
    policyFile: '',
    policyHash: '',
    policyText: '',
    mode: 'enforce',
    default: 'accept',
    hosts: [],
    counters: [],
    appliedAt: at,
    appliedBy: by,
  };
}

/** Who is running this: the login behind sudo when there is one. */
export function whoAmI(env: Record<string, string | undefined>): { user: string; uid: number } {
  const uid = typeof process.getuid === 'function' ? process.getuid() : -1;
  const user = env.SUDO_USER || env.LOGNAME || env.USER || (uid === 0 ? 'root' : String(uid));
  const sudoUid = env.SUDO_UID && /^\d+$/.test(env.SUDO_UID) ? Number(env.SUDO_UID) : undefined;
  return { user, uid: sudoUid ?? uid };
}
