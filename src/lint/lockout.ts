/**
 * The SSH lockout guard: would this policy cut the session it is applied
 * from? Pure: the caller passes the environment (`SSH_CONNECTION`).
 *
 * The session's own traffic out of this host is the server's replies: TCP
 * from the SSH port to the client's address and port, from a socket owned by
 * root (sshd). Those packets belong to an established connection, and so are
 * the replies of any new session the operator opens to get back in. The
 * flow is asked of the indexed evaluator exactly as the kernel would see it,
 * so the `established` builtin, deny rules and allows all count. Rules that
 * name an output interface (`via`) are not assumed to match (the interface is
 * not known from SSH_CONNECTION), which can only make the guard more careful.
 *
 * `apply` refuses a policy with a risk unless `--force`; `check` reports the
 * same as a warning (`lintLockout`, called by `loadPolicyText`).
 */
import { warning, type Diagnostic } from '../diag/diagnostic.js';
import type { Span } from '../diag/source.js';
import type { Ir } from '../ir/types.js';
import { parseAddress, type Family } from '../policy/address.js';
import type { Policy } from '../policy/types.js';
import type { Decision, Flow } from '../sim/flow.js';
import { indexedEvaluator } from '../sim/indexed.js';

export interface SshSession {
  peer: string;
  peerPort: number;
  local: string;
  localPort: number;
  family: Family;
}

/** `SSH_CONNECTION="client_ip client_port server_ip server_port"`; undefined when absent or malformed. */
export function parseSshConnection(env: Record<string, string | undefined>): SshSession | undefined {
  const parts = (env.SSH_CONNECTION ?? '').trim().split(/\s+/);
  if (parts.length !== 4) return undefined;
  const [peer, pp, local, lp] = parts as [string, string, string, string];
  const a = parseAddress(stripZone(peer));
  if (!a || !/^\d{1,5}$/.test(pp) || !/^\d{1,5}$/.test(lp)) return undefined;
  return { peer: stripZone(peer), peerPort: Number(pp), local: stripZone(local), localPort: Number(lp), family: a.family };
}

function stripZone(addr: string): string {
  const i = addr.indexOf('%');
  return i < 0 ? addr : addr.slice(0, i);
}

export interface LockoutRisk {
  session: SshSession;
  decision: Decision;
  /** One sentence, lowercase, for an error or a warning. */
  message: string;
  hint: string;
  /** Where in the policy the deciding setting or rule is written, when known. */
  span?: Span;
}

/** The flow of the session's replies, as the kernel's output hook sees it. */
export function sessionFlow(s: SshSession): Flow {
  return { family: s.family, dst: parseAddress(s.peer)!.value, proto: 'tcp', port: s.peerPort, user: { id: 0, name: 'root' }, group: { id: 0, name: 'root' }, established: true };
}

/**
 * The risk this policy poses to the SSH session, or undefined when the
 * session's replies are accepted (or the policy is in audit mode, which
 * blocks nothing). `policy` only adds source positions to the answer.
 */
export function checkLockout(ir: Ir, session: SshSession, policy?: Pick<Policy, 'spans'>): LockoutRisk | undefined {
  if (ir.mode === 'audit') return undefined;
  const decision = indexedEvaluator(ir)(sessionFlow(session));
  if (decision.verdict === 'accept') return undefined;
  const who = `${session.peer} port ${session.peerPort}`;
  let message: string;
  let span: Span | undefined;
  if (decision.step === 'deny') {
    const names = decision.rules.map((r) => `"${r.name}"`).join(', ');
    message = `this policy would cut your SSH session: deny rule ${names} ${decision.verdict}s the replies to ${who}`;
    span = decision.rules[0]?.span;
  } else {
    message = `this policy would cut your SSH session: replies to ${who} are not allowed, so the default ${decision.verdict}s them`;
    span = policy?.spans.builtins.established ?? policy?.spans.default;
  }
  const hint = ir.builtins.established
    ? `allow tcp to ${session.peer}; if you mean it, apply with --force --confirm SECONDS so it rolls back unless you confirm`
    : `keep "builtins: established: true" (it admits the replies of every connection this host accepted); if you mean it, apply with --force --confirm SECONDS so it rolls back unless you confirm`;
  return { session, decision, message, hint, ...(span ? { span } : {}) };
}

/**
 * The lockout check as a lint: a `ssh-lockout` warning when the caller's
 * environment names an SSH session this policy would cut. `apply` reads the
 * same risk and refuses instead of warning.
 */
export function lintLockout(ir: Ir, env: Record<string, string | undefined>, policy?: Pick<Policy, 'spans'>): { risk?: LockoutRisk; diagnostics: Diagnostic[] } {
  const session = parseSshConnection(env);
  const risk = session ? checkLockout(ir, session, policy) : undefined;
  if (!risk) return { diagnostics: [] };
  return { risk, diagnostics: [warning('ssh-lockout', risk.message, risk.span, { hint: risk.hint })] };
}
