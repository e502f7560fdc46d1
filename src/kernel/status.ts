/** What is live, as `egress status` reports it. Read-only: no lock, nothing written. */
import { existsSync } from 'node:fs';
import { liveFingerprint } from '../plan/diff.js';
import type { LiveRuleset } from '../backends/live.js';
import { BUILTIN_COMMENT, DEFAULT_COMMENT, FORWARD_CHAIN, FORWARD_DEFAULT_CHAIN } from '../backends/iptables/emit.js';
import { readLive } from './backend.js';
import { forwardView, scopeOfText, type ForwardView } from './forward-view.js';
import { watchdogAlive } from './confirm.js';
import { forwarderCounters, forwarderRunning } from './forwarder.js';
import { readHistory, type HistoryEntry } from './history.js';
import { readState, requireStateDir, type Applying, type Pending, type Snapshot } from './state.js';
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
  logging?: { denials: number; logged: number; notLogged: number; limit: string };
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

/** `forward: false`: skip what the host forwards (its links, routes and sysctls; stats and learn want only the counters). */
export async function readStatus(w: Where, stateDir: string, now: Date, opts: { forward?: boolean } = {}): Promise<Status> {
  // A host where egress never applied anything is inactive, not an error (as `ufw status` on a fresh host);
  // but rules of egress live without a state directory (it was wiped) are the error below, not "inactive".
  if (!existsSync(stateDir)) {
    const unrecorded = [];
    for (const b of ['nft', 'iptables'] as const) if ((await readLive(w, b)).live.present) unrecorded.push(b);
    if (!unrecorded.length) return { stateDir, applied: false, drift: false, interrupted: false, counters: [] };
  }
  requireStateDir(stateDir);
  const live = readState(stateDir, 'live');
  const pending = readState(stateDir, 'pending');
  const intent = readState(stateDir, 'applying') as (Applying & { action?: string; checkBackend?: LinuxTarget; priorFingerprint?: string }) | undefined;
  const interrupted = intent !== undefined;
  const hist = readHistory(stateDir).entries;
  const st: Status = { stateDir, applied: live?.kind === 'ruleset', drift: false, interrupted, counters: [], ...(hist.length ? { last: hist[hist.length - 1]! } : {}) };
  if (intent?.checkBackend) {
    const fp = liveFingerprint((await readLive(w, intent.checkBackend)).live);
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
  const read = await readLive(w, live.backend);
  const cur = read.live;
  st.drift = !!live.fingerprint && liveFingerprint(cur) !== live.fingerprint;
  st.counters = countersOf(live, cur);
  const logging = loggingOf(live, cur, st.counters, cur.counters.get('dns_bypass')?.packets ?? 0);
  if (logging) st.logging = logging;
  if (opts.forward !== false) {
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
