/** What is live, as `egress status` reports it. Read-only: no lock, nothing written. */
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { dirname, join, resolve as resolvePath } from 'node:path';
import { liveFingerprint } from '../plan/diff.js';
import type { LiveRuleset } from '../backends/live.js';
import { BUILTIN_COMMENT, DEFAULT_COMMENT, FORWARD_CHAIN, FORWARD_DEFAULT_CHAIN } from '../backends/iptables/emit.js';
import { realKernel, type LinuxKernel } from './backend.js';
import { readNftLive } from '../backends/nft/parse-live.js';
import { ifupdownDirOf, IFUPDOWN_HOOK_NAME, persistEnabled, UNIT_NAME, WANTED_BY } from './persist.js';
import { readRefreshWatch } from './refresh-watch.js';
import { packagedUnitDirsOf, systemdDirOf, writtenByEgress } from './units.js';
import { KernelError, runIn } from './where.js';
import type { HostEntry } from '../resolve/types.js';
import type { RuleAst, SetAst } from '../policy/ast.js';
import { forwardView, scopeOfText, type ForwardView } from './forward-view.js';
import { watchdogAlive } from './confirm.js';
import { forwarderCounters, forwarderRunning } from './forwarder.js';
import { readHistory, type HistoryEntry } from './history.js';
import { readState, requireStateDir, sha256, type Applying, type Pending, type Snapshot } from './state.js';
import type { LinuxTarget } from '../backends/types.js';
import type { Where } from './where.js';
import { SourceFile } from '../diag/source.js';
import { parseDate } from '../policy/check.js';
import { parsePolicy } from '../policy/parse.js';

export interface RuleCounter {
  rule: string;
  /** `unlisted`: new forwarded flows from no source (SPEC §6). */
  action: 'allow' | 'deny' | 'builtin' | 'default' | 'unlisted';
  family?: 'ipv4' | 'ipv6';
  /** Forwarded traffic's counter (SPEC §6); absent = the host's. */
  scope?: 'forward';
  packets: number;
  bytes: number;
}

/** Log lines against denials (Status.logging): what every logging rule counted, what the rate limit let through to the log, the difference, and the limit as loaded. */
export interface LoggingCounts {
  denials: number;
  logged: number;
  notLogged: number;
  limit: string;
}

export interface Status {
  stateDir: string;
  applied: boolean;
  backend?: string;
  mode?: string;
  default?: string;
  policyFile?: string;
  policyHash?: string;
  appliedAt?: string;
  appliedBy?: { user: string; uid: number };
  pending?: { deadline: string; secondsLeft: number; watchdog: string; watchdogAlive: boolean };
  /** The live ruleset is not what egress recorded (changed by hand, or an interrupted command not yet settled). */
  drift: boolean;
  interrupted: boolean;
  /**
   * The interrupted command, when an intent record is left: what it was, and
   * which side of its change the kernel is on now (`new`: it had loaded its
   * ruleset, the next locked command records it; `old`: it had not, the next
   * command drops the record; `neither`: something else changed the ruleset
   * meanwhile, the next command restores the ruleset from before it).
   */
  interruptedBy?: { action: string; pid: number; startedAt: string; kernel: 'new' | 'old' | 'neither' };
  counters: RuleCounter[];
  /** `dns.proxy`: whether the DNS forwarder runs, and what each dynamic set has learned. */
  dns?: {
    running: boolean;
    pid?: number;
    upstream: string[];
    names: number;
    learned: { set: string; elements: number }[];
    /** What the running forwarder counted (it writes them every 2 s), and `bypass`: DNS/DoT packets the ruleset rejected (nft counter `dns_bypass`). */
    counters?: { queries: number; answered: number; refused: number; servfail: number; holdTimeouts: number; malformed: number; published: number; fastAnswers: number; refreshFailures: number; bypass: number; at?: string };
  };
  last?: HistoryEntry;
  /**
   * Rules of the live policy with `expires`: when each stops admitting (the
   * end of its day, UTC; the kernel does it: nft `meta time`, iptables
   * `-m time`), and whether that has passed (the rule stays in the ruleset,
   * admitting nothing, until the next apply leaves it out).
   */
  expires?: { rule: string; expires: string; ends: string; past: boolean; daysLeft: number }[];
  /** Forwarded traffic (SPEC §6): side doors, and on iptables the EGRESS-FWD jump's drift. */
  forward?: ForwardView;
  /**
   * Log lines against denials, exact, from the kernel since the ruleset was
   * loaded: `denials` counted by every rule that logs, `logged` let through
   * by the rate limit (nft: counter `logged` after the limit; iptables: the
   * LOG rules' own counts). The difference is what the limit dropped: flows
   * no log reader (stats, learn, replay) ever sees.
   */
  logging?: LoggingCounts;
  /** What logs, from the applied ruleset: the policy's `log.prefix`, and each log prefix the ruleset carries (`EGRESS D:smtp `) with the rule it names ("-": the default). */
  log?: { prefix: string; uid: boolean; /** The kernel's rate limit on log lines, as loaded. */ rate?: string; rules: { rule: string; prefix: string }[] };
  /** Boot restore (`egress persist`): whether it is on, and whose units: the package's, ones persist wrote, or the ifupdown hook. */
  persistence?: { enabled: boolean; units?: 'package' | 'persist' | 'other'; unit?: string; ifupdownHook?: string };
  /** Per policy rule: what it admits (or denies) and its exact kernel counters (`counters` has the same numbers per family). */
  rules?: RuleView[];
  /** The policy's hostnames: the addresses the live ruleset holds for each (as the last apply or refresh resolved them). */
  names?: HostEntry[];
  /** The last refresh (history.jsonl) and the next round of a running `refresh --watch`. */
  refresh?: {
    last?: { time: string; outcome: string; message?: string };
    watch?: { pid: number; running: boolean; next?: string; names?: string[] };
  };
  /** The last automatic rollback (a confirmation missed), and what it restored. */
  lastAutoRollback?: { time: string; restored: { policyFile: string; policyHash: string }; message?: string };
  /** The policy file on disk against what was applied: `same`, `changed` (its hash now), `missing`, `unreadable`. */
  policyOnDisk?: { state: 'same' | 'changed' | 'missing' | 'unreadable'; hash?: string; why?: string };
  /**
   * How the ruleset was compared with what egress recorded (`drift`):
   * `full`, or `structure` (chains, rules, counters, set declarations, not
   * their elements) on a ruleset whose sets hold more than
   * STATUS_FULL_LISTING_LIMIT elements, where listing them all costs seconds
   * (`egress plan` compares everything).
   */
  compared?: { what: 'full' | 'structure'; setElements: number };
}

/** Set elements above which status lists the nft table without them (`nft -t`): see `Status.compared`. */
export const STATUS_FULL_LISTING_LIMIT = 20_000;

export interface RuleView {
  rule: string;
  action: 'allow' | 'deny';
  /** host, forward or both (a rule with `from:` is a forward rule, SPEC §6). */
  scope: ('host' | 'forward')[];
  /** What `to` names: hostnames, sets (with their element count, or their file), addresses counted. */
  to: { names: string[]; sets: { name: string; elements?: number; file?: string }[]; addresses: number; any: boolean };
  /** Addresses in the kernel's sets of this rule, per family (nft; as applied). */
  kernelAddresses?: { ipv4?: number; ipv6?: number };
  ports: string[];
  icmp: string[];
  users: string[];
  groups: string[];
  from: string[];
  expires?: string;
  /** Whether its denials are logged (deny rules; audit mode logs what they would deny). */
  logs: boolean;
  packets: number;
  bytes: number;
}

/** The `expires` of the rules of a policy text, from its syntax alone (nothing resolved). */
export function expiriesOf(policyFile: string, policyText: string, now: Date): NonNullable<Status['expires']> {
  const ast = parsePolicy(new SourceFile(policyFile, policyText)).value;
  const out: NonNullable<Status['expires']> = [];
  for (const r of [...(ast?.deny ?? []), ...(ast?.allow ?? [])]) {
    const d = r.expires && parseDate(r.expires.value);
    if (!d || !r.name) continue;
    const ends = d.getTime() + 86_400_000;
    out.push({ rule: r.name.value, expires: r.expires!.value, ends: new Date(ends).toISOString(), past: ends <= now.getTime(), daysLeft: Math.ceil((ends - now.getTime()) / 86_400_000) });
  }
  return out.sort((a, b) => (a.ends < b.ends ? -1 : a.ends > b.ends ? 1 : 0));
}

export interface StatusOptions {
  /** false: skip what the host forwards (its links, routes and sysctls; stats and learn want only the counters). */
  forward?: boolean;
  /** The kernel (default: the real one through `w`; tests pass the fake). */
  kernel?: LinuxKernel;
  /** For the unit directories (persist) and the ifupdown hook (default process.env). */
  env?: Record<string, string | undefined>;
  /** Told each step as it starts (the CLI's stage line on a terminal: cli/progress.ts). */
  stage?: (what: string) => void;
}

export async function readStatus(w: Where, stateDir: string, now: Date, opts: StatusOptions = {}): Promise<Status> {
  const k = opts.kernel ?? realKernel(w);
  const env = opts.env ?? process.env;
  const stage = opts.stage ?? (() => {});
  stage('reading the state directory');
  // A host where egress never applied anything is inactive, not an error (as `ufw status` on a fresh host);
  // but rules of egress live without a state directory (it was wiped) are the error below, not "inactive".
  if (!existsSync(stateDir)) {
    const unrecorded = [];
    for (const b of ['nft', 'iptables'] as const) if ((await k.readLive(b)).live.present) unrecorded.push(b);
    if (!unrecorded.length) return { stateDir, applied: false, drift: false, interrupted: false, counters: [] };
  }
  requireStateDir(stateDir);
  const live = readState(stateDir, 'live');
  const pending = readState(stateDir, 'pending');
  const intent = readState(stateDir, 'applying') as (Applying & { action?: string; checkBackend?: LinuxTarget; priorFingerprint?: string }) | undefined;
  const interrupted = intent !== undefined;
  const hist = readHistory(stateDir).entries;
  const st: Status = { stateDir, applied: live?.kind === 'ruleset', drift: false, interrupted, counters: [], ...(hist.length ? { last: hist[hist.length - 1]! } : {}) };
  const auto = findLast(hist, (e) => e.action === 'auto-rollback' && e.outcome === 'ok');
  if (auto) st.lastAutoRollback = { time: auto.time, restored: { policyFile: auto.policyFile, policyHash: auto.policyHash }, ...(auto.message !== undefined ? { message: auto.message } : {}) };
  const refreshed = findLast(hist, (e) => e.action === 'refresh');
  const watch = readRefreshWatch(stateDir);
  if (refreshed || watch)
    st.refresh = {
      ...(refreshed ? { last: { time: refreshed.time, outcome: refreshed.outcome, ...(refreshed.message !== undefined ? { message: refreshed.message } : {}) } } : {}),
      ...(watch ? { watch: { pid: watch.pid, running: processAlive(watch.pid), ...(processAlive(watch.pid) ? { next: watch.next, names: watch.names } : {}) } } : {}),
    };
  st.persistence = persistenceOf(env);
  if (intent?.checkBackend) {
    const fp = liveFingerprint((await k.readLive(intent.checkBackend)).live);
    st.interruptedBy = {
      action: intent.action ?? 'change',
      pid: intent.pid,
      startedAt: intent.startedAt,
      kernel: fp === intent.nextFingerprint ? 'new' : fp === intent.priorFingerprint ? 'old' : 'neither',
    };
  }
  if (!live || live.kind !== 'ruleset') return st;
  Object.assign(st, {
    backend: live.backend,
    mode: live.mode,
    default: live.default,
    policyFile: live.policyFile,
    policyHash: live.policyHash,
    appliedAt: live.appliedAt,
    appliedBy: live.appliedBy,
  });
  if (pending) st.pending = await pendingInfo(w, pending, now);
  const expires = expiriesOf(live.policyFile, live.policyText, now);
  if (expires.length) st.expires = expires;
  const setElements = live.backend === 'nft' ? [...nftSetSizes(live.ruleset).values()].reduce((a, b) => a + b, 0) : 0;
  // A big nft ruleset is listed without its set elements (`nft -t`): its counters and rules in milliseconds, not seconds.
  const terse = !opts.kernel && live.backend === 'nft' && setElements > STATUS_FULL_LISTING_LIMIT;
  stage(`reading the counters (${live.backend === 'nft' ? `nft${terse ? ' -t' : ''} list table inet egress` : 'iptables-save'})`);
  const read = terse ? { live: await readNftTerse(w) } : await k.readLive(live.backend);
  const cur = read.live;
  st.compared = { what: terse ? 'structure' : 'full', setElements };
  st.drift = !!live.fingerprint && (terse ? structureOf(JSON.parse(liveFingerprint(cur)) as Fingerprint) !== structureOfRecorded(live.fingerprint) : liveFingerprint(cur) !== live.fingerprint);
  st.policyOnDisk = policyOnDisk(live);
  if (live.hosts.length) st.names = live.hosts;
  st.counters = countersOf(live, cur);
  const logging = loggingOf(live, cur, st.counters, cur.counters.get('dns_bypass')?.packets ?? 0);
  if (logging) st.logging = logging;
  st.log = logOf(live);
  st.rules = rulesOf(live, st.counters, st.log);
  if (opts.forward !== false) {
    stage('reading what the host forwards');
    st.forward = await forwardView(w, scopeOfText(live.policyFile, live.policyText), live.backend, read.save);
    if (st.forward.drift.some((d) => d.severity === 'warning')) st.drift = true;
  }
  if (live.dns) {
    const fwd = forwarderRunning(stateDir);
    st.dns = {
      running: !!fwd,
      ...(fwd ? { pid: fwd.pid } : {}),
      upstream: live.dns.upstream.map((u) => (u.address.includes(':') ? `[${u.address}]:${u.port}` : `${u.address}:${u.port}`)),
      names: live.dns.names.length,
      learned: [...cur.sets].filter(([, set]) => set.learned).map(([set, x]) => ({ set, elements: x.learned!.length })),
    };
    const c = fwd ? forwarderCounters(stateDir) : undefined;
    const n = (k: string) => (typeof c?.[k] === 'number' ? (c[k] as number) : 0);
    st.dns.counters = {
      queries: n('queries'),
      answered: n('answered'),
      refused: n('refused'),
      servfail: n('servfail'),
      holdTimeouts: n('holdTimeouts'),
      malformed: n('malformed'),
      published: n('published'),
      fastAnswers: n('fastAnswers'),
      refreshFailures: n('refreshFailures'),
      bypass: cur.counters.get('dns_bypass')?.packets ?? 0,
      ...(typeof c?.time === 'string' ? { at: c.time } : {}),
    };
  }
  return st;
}

async function pendingInfo(w: Where, p: Pending, now: Date): Promise<NonNullable<Status['pending']>> {
  return {
    deadline: p.deadline,
    secondsLeft: Math.max(0, Math.round((Date.parse(p.deadline) - now.getTime()) / 1000)),
    watchdog: p.watchdog.kind === 'process' ? `process ${p.watchdog.pid}` : `systemd ${p.watchdog.unit}.timer`,
    watchdogAlive: await watchdogAlive(w.execer, p.watchdog),
  };
}

/** Per-rule counts read from the kernel (never reset). */
export function countersOf(s: Snapshot, cur: LiveRuleset): RuleCounter[] {
  const out: RuleCounter[] = [];
  if (s.backend === 'nft') {
    for (const b of ['loopback', 'established', 'icmpv6_nd'] as const) {
      const c = cur.counters.get(`builtin_${b}`);
      if (c) out.push({ rule: b, action: 'builtin', ...c });
    }
    for (const ref of s.counters) {
      const c = cur.counters.get(ref.name);
      out.push({ rule: ref.rule, action: ref.action, family: ref.family, ...(ref.scope ? { scope: ref.scope } : {}), packets: c?.packets ?? 0, bytes: c?.bytes ?? 0 });
    }
    for (const [f, tag] of [['ipv4', 'v4'], ['ipv6', 'v6']] as const) {
      const c = cur.counters.get(`default_${tag}`);
      if (c) out.push({ rule: s.default, action: 'default', family: f, ...c });
    }
    const fwd = cur.forward;
    for (const b of ['established', 'into_source'] as const) {
      const c = cur.counters.get(`builtin_fwd_${b}`);
      if (c) out.push({ rule: b, action: 'builtin', scope: 'forward', ...c });
    }
    for (const [f, tag] of [['ipv4', 'v4'], ['ipv6', 'v6']] as const) {
      const d = cur.counters.get(`fwd_default_${tag}`);
      if (d) out.push({ rule: fwd?.default ?? 'default', action: 'default', family: f, scope: 'forward', ...d });
      const u = cur.counters.get(`fwd_unlisted_${tag}`);
      if (u) out.push({ rule: fwd?.unlisted ?? 'unlisted', action: 'unlisted', family: f, scope: 'forward', ...u });
    }
    return out;
  }
  // iptables: builtins and the default by their comments in EGRESS; a policy rule by its own chain
  // (first rule that is not a RETURN) when it has one, else by the EGRESS rules carrying its comment.
  const egress = (f: string) => cur.chains.get(`${f}:EGRESS`) ?? [];
  for (const f of ['ipv4', 'ipv6'] as const)
    for (const b of ['loopback', 'established', 'icmpv6_nd'] as const) {
      const rules = egress(f).filter((r) => r.comment !== undefined && new RegExp(`(^|\\s)builtin: ${b}$`).test(r.comment));
      if (rules.length) out.push({ rule: b, action: 'builtin', family: f, packets: sum(rules, 'packets'), bytes: sum(rules, 'bytes') });
    }
  for (const ref of s.counters) {
    const chain = cur.chains.get(ref.name);
    let packets = 0;
    let bytes = 0;
    const base = ref.scope === 'forward' ? `:${FORWARD_CHAIN}` : ':EGRESS';
    if (chain && !ref.name.endsWith(base)) {
      const first = chain.find((r) => !/ -j RETURN$/.test(r.text));
      packets = first?.packets ?? 0;
      bytes = first?.bytes ?? 0;
    } else {
      const rules = ref.scope === 'forward' ? cur.chains.get(`${ref.family}:${FORWARD_CHAIN}`) ?? [] : egress(ref.family);
      const mine = rules.filter((r) => r.comment === ref.rule || (r.comment?.startsWith(`${ref.rule}: `) && !/: except \d+$/.test(r.comment)));
      packets = sum(mine, 'packets');
      bytes = sum(mine, 'bytes');
    }
    out.push({ rule: ref.rule, action: ref.action, family: ref.family, ...(ref.scope ? { scope: ref.scope } : {}), packets, bytes });
  }
  for (const f of ['ipv4', 'ipv6'] as const) {
    const d = egress(f).find((r) => r.comment !== undefined && /(^|\s)default: /.test(r.comment));
    if (d) out.push({ rule: s.default, action: 'default', family: f, packets: d.packets ?? 0, bytes: d.bytes ?? 0 });
  }
  for (const f of ['ipv4', 'ipv6'] as const) {
    const chain = cur.chains.get(`${f}:${FORWARD_CHAIN}`);
    if (!chain) continue;
    for (const b of ['established', 'into source'] as const) {
      const rules = chain.filter((r) => r.comment === `${BUILTIN_COMMENT} forward ${b}`);
      if (rules.length) out.push({ rule: b.replace(' ', '_'), action: 'builtin', family: f, scope: 'forward', packets: sum(rules, 'packets'), bytes: sum(rules, 'bytes') });
    }
    const d = cur.chains.get(`${f}:${FORWARD_DEFAULT_CHAIN}`)?.[0];
    const dm = chain.find((r) => r.comment?.startsWith(`${DEFAULT_COMMENT} forward `));
    if (dm) out.push({ rule: dm.comment!.slice(`${DEFAULT_COMMENT} forward `.length), action: 'default', family: f, scope: 'forward', packets: d?.packets ?? sum(chain.filter((r) => r.comment === dm.comment), 'packets'), bytes: d?.bytes ?? sum(chain.filter((r) => r.comment === dm.comment), 'bytes') });
    const u = chain.find((r) => r.comment?.startsWith('egress forward unlisted: '));
    if (u) out.push({ rule: u.comment!.slice('egress forward unlisted: '.length), action: 'unlisted', family: f, scope: 'forward', packets: u.packets ?? 0, bytes: u.bytes ?? 0 });
  }
  return out;
}

/**
 * Whether a counter counts denials (each of them logged, rate permitting):
 * deny rules, a default that is not accept (the host's is `hostDefault`, a
 * forward default names its own), unlisted flows unless they are accepted.
 */
export function denies(x: RuleCounter, hostDefault: string | undefined): boolean {
  return x.action === 'deny' || (x.action === 'default' && (x.scope === 'forward' ? x.rule : hostDefault) !== 'accept') || (x.action === 'unlisted' && x.rule !== 'accept');
}

/** Denials that log, against lines logged (see `Status.logging`); undefined when the ruleset has no rate limit. */
export function loggingOf(s: Snapshot, cur: LiveRuleset, counters: readonly RuleCounter[], dnsBypass: number): Status['logging'] {
  const m = /limit rate (\d+)\/(\w+) burst (\d+) packets/.exec(s.ruleset) ?? /--limit (\d+)\/(\w+) --limit-burst (\d+)/.exec(s.ruleset);
  if (!m) return undefined;
  const denials = counters.filter((x) => denies(x, s.default)).reduce((n, x) => n + x.packets, 0) + dnsBypass;
  const logged =
    s.backend === 'nft'
      ? cur.counters.get('logged')?.packets ?? 0
      : [...cur.chains.values()].flat().filter((r) => / -j LOG /.test(r.text)).reduce((n, r) => n + (r.packets ?? 0), 0);
  return { denials, logged, notLogged: Math.max(0, denials - logged), limit: `${m[1]}/${m[2]} burst ${m[3]}` };
}

function sum(rs: { packets?: number; bytes?: number }[], k: 'packets' | 'bytes'): number {
  return rs.reduce((n, r) => n + (r[k] ?? 0), 0);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function findLast<T>(xs: readonly T[], p: (x: T) => boolean): T | undefined {
  for (let i = xs.length - 1; i >= 0; i--) if (p(xs[i]!)) return xs[i];
  return undefined;
}

/**
 * `table inet egress` without its set elements, from `nft -t` listings of
 * the ruleset: nft 1.0.6 fetches every set's elements for any listing scoped
 * to a table (0.6 s for `list counters table inet egress` with 100k
 * elements), but not for a terse listing of the ruleset (milliseconds).
 */
export async function readNftTerse(w: Where): Promise<LiveRuleset> {
  const j = await runIn(w, ['nft', '-t', '-j', 'list', 'ruleset']);
  if (j.code !== 0) throw new KernelError(`cannot list the ruleset: ${j.stderr.trim() || `nft exited ${j.code}`}`, j.stderr);
  const t = await runIn(w, ['nft', '-t', '-a', 'list', 'ruleset']);
  return readNftLive(...egressOnly(j.stdout, t.code === 0 ? t.stdout : undefined));
}

/** The JSON and text listings of the whole ruleset cut down to `table inet egress` (undefined JSON: not there). */
export function egressOnly(json: string, text: string | undefined): [string | undefined, string | undefined] {
  const doc = JSON.parse(json) as { nftables?: Record<string, { family?: string; name?: string; table?: string } | undefined>[] };
  const items = (doc.nftables ?? []).filter((o) => {
    const [kind, v] = Object.entries(o)[0] ?? [];
    if (kind === 'metainfo') return false;
    return v?.family === 'inet' && (kind === 'table' ? v.name === 'egress' : v.table === 'egress');
  });
  if (!items.some((o) => 'table' in o)) return [undefined, undefined];
  const m = text === undefined ? null : /^table inet egress \{.*\n(?:(?!\}\n)[^\n]*\n)*\}$/m.exec(text);
  return [JSON.stringify({ nftables: items }), m ? m[0] + '\n' : undefined];
}

type Fingerprint = { backend: string; chains: unknown; sets: [string, { elements?: unknown }][]; counters: unknown; jumps: unknown };

/** A fingerprint (plan/diff.ts liveFingerprint) without set elements. */
function structureOf(f: Fingerprint): string {
  return JSON.stringify({ ...f, sets: f.sets.map(([n, x]) => [n, { ...x, elements: undefined }]) });
}

function structureOfRecorded(fp: string): string {
  try {
    return structureOf(JSON.parse(fp) as Fingerprint);
  } catch {
    return fp;
  }
}

/** Elements of each named set in an emitted nft ruleset (one per line between `elements = {` and `}`). */
export function nftSetSizes(ruleset: string): Map<string, number> {
  const out = new Map<string, number>();
  let set: string | undefined;
  let inElements = false;
  for (const line of ruleset.split('\n')) {
    const t = line.trim();
    let m: RegExpExecArray | null;
    if ((m = /^set (\S+) \{$/.exec(t))) {
      set = m[1]!;
      out.set(set, 0);
    } else if (set && /^elements = \{/.test(t)) {
      inElements = !t.endsWith('}');
      const inline = t.replace(/^elements = \{/, '').replace(/\}$/, '').trim();
      if (inline) out.set(set, out.get(set)! + inline.split(',').filter((x) => x.trim()).length);
    } else if (inElements) {
      if (t === '}') inElements = false;
      else out.set(set!, out.get(set!)! + t.split(',').filter((x) => x.trim()).length);
    } else if (t === '}') set = undefined;
  }
  return out;
}

/** Whether boot restores the policy (`egress persist`), and through which units. */
export function persistenceOf(env: Record<string, string | undefined>): NonNullable<Status['persistence']> {
  const unitDir = systemdDirOf(env);
  const hook = join(ifupdownDirOf(env), IFUPDOWN_HOOK_NAME);
  const out: NonNullable<Status['persistence']> = { enabled: persistEnabled(unitDir), ...(existsSync(hook) ? { ifupdownHook: hook } : {}) };
  if (out.ifupdownHook) out.enabled = true;
  if (!persistEnabled(unitDir)) return out;
  let unit: string;
  try {
    unit = resolvePath(join(unitDir, `${WANTED_BY}.wants`), readlinkSync(join(unitDir, `${WANTED_BY}.wants`, UNIT_NAME)));
  } catch {
    return out;
  }
  out.unit = unit;
  if (packagedUnitDirsOf(env).some((d) => resolvePath(d) === dirname(unit))) out.units = 'package';
  else {
    let text = '';
    try {
      text = readFileSync(unit, 'utf8');
    } catch {
      /* a dangling link: persistEnabled said no */
    }
    out.units = writtenByEgress(text) ? 'persist' : 'other';
  }
  return out;
}

/** The applied policy's file against what was applied (its hash). */
export function policyOnDisk(live: Pick<Snapshot, 'policyFile' | 'policyHash'>): NonNullable<Status['policyOnDisk']> {
  let bytes: Buffer;
  try {
    bytes = readFileSync(live.policyFile);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? { state: 'missing' } : { state: 'unreadable', why: code ?? (e as Error).message };
  }
  const hash = sha256(bytes);
  return hash === live.policyHash ? { state: 'same', hash } : { state: 'changed', hash };
}

/** Log prefixes of the applied ruleset (nft `log prefix "…"`, iptables `--log-prefix "…"`), with the policy's log settings. */
export function logOf(s: Pick<Snapshot, 'ruleset' | 'policyFile' | 'policyText'>): NonNullable<Status['log']> {
  const ast = parsePolicy(new SourceFile(s.policyFile, s.policyText)).value;
  const prefix = ast?.log.prefix?.value ?? 'EGRESS ';
  const seen = new Map<string, string>();
  for (const m of s.ruleset.matchAll(/(?:log prefix|--log-prefix) "((?:[^"\\]|\\.)*)"/g)) {
    const p = m[1]!;
    const rest = p.startsWith(prefix) ? p.slice(prefix.length) : p;
    const tag = /^[A-Za-z]:(.*?) ?$/.exec(rest);
    if (!seen.has(p)) seen.set(p, tag ? tag[1]! : rest.trim());
  }
  const m = /limit rate (\d+)\/(\w+) burst (\d+) packets/.exec(s.ruleset) ?? /--limit (\d+)\/(\w+) --limit-burst (\d+)/.exec(s.ruleset);
  const rate = m ? `${m[1]}/${m[2]} burst ${m[3]}` : undefined;
  return { prefix, uid: ast?.log.uid?.value ?? true, ...(rate ? { rate } : {}), rules: [...seen].map(([p, rule]) => ({ rule, prefix: p })) };
}

const ADDRESSY = /^[0-9a-fA-F:.]+(\/\d+)?$|^[0-9.]+-[0-9.]+$|^[0-9a-fA-F:]+-[0-9a-fA-F:]+$/;

/** Per policy rule: what it admits, from the applied policy text (and, for nft, its kernel sets' sizes), with its counters. */
export function rulesOf(s: Snapshot, counters: readonly RuleCounter[], log: NonNullable<Status['log']>): RuleView[] {
  const ast = parsePolicy(new SourceFile(s.policyFile, s.policyText)).value;
  if (!ast) return [];
  const sets = new Map<string, SetAst>(ast.sets.map((x) => [x.name.value, x]));
  const sizes = s.backend === 'nft' ? nftSetSizes(s.ruleset) : new Map<string, number>();
  const logged = new Set(log.rules.map((r) => r.rule));
  const vals = (xs: { value: string }[] | undefined) => (xs ?? []).map((x) => x.value);
  const view = (r: RuleAst): RuleView | undefined => {
    if (!r.name) return undefined;
    const name = r.name.value;
    const mine = counters.filter((c) => c.rule === name && (c.action === 'allow' || c.action === 'deny'));
    const refs = s.counters.filter((c) => c.rule === name);
    const to: RuleView['to'] = { names: [], sets: [], addresses: 0, any: !r.to?.length };
    for (const d of vals(r.to)) {
      if (d.startsWith('$')) {
        const def = sets.get(d.slice(1));
        to.sets.push({ name: d, ...(def?.items ? { elements: def.items.length } : {}), ...(def?.file ? { file: def.file.value } : {}) });
      } else if (ADDRESSY.test(d)) to.addresses++;
      else to.names.push(d);
    }
    const kernel: NonNullable<RuleView['kernelAddresses']> = {};
    for (const ref of refs) {
      for (const set of [`${ref.name}_addr`, `${ref.name}_dst`, `${ref.name}_hosts`]) {
        const n = sizes.get(set);
        if (n !== undefined && !ref.scope) kernel[ref.family] = (kernel[ref.family] ?? 0) + n;
      }
    }
    const scope = [...new Set(refs.map((c) => c.scope ?? 'host'))].sort() as RuleView['scope'];
    return {
      rule: name,
      action: r.action,
      scope: scope.length ? scope : [r.from?.length ? 'forward' : 'host'],
      to,
      ...(Object.keys(kernel).length ? { kernelAddresses: kernel } : {}),
      ports: vals(r.ports),
      icmp: vals(r.icmp),
      users: vals(r.user),
      groups: vals(r.group),
      from: vals(r.from),
      ...(r.expires ? { expires: r.expires.value } : {}),
      logs: logged.has(name),
      packets: mine.reduce((n, c) => n + c.packets, 0),
      bytes: mine.reduce((n, c) => n + c.bytes, 0),
    };
  };
  return [...ast.deny, ...ast.allow].map(view).filter((v): v is RuleView => v !== undefined);
}
