/** SPEC §2 in one place: the DNS guard (`dns.proxy`), builtins, then deny (unless except), then allow, then default. */
import type { IrDns } from '../ir/types.js';
import { ICMPV6_ND_TYPES } from '../policy/protocols.js';
import type { Policy, PolicyDns, RuleRef } from '../policy/types.js';
import { isLoopbackFlow, ownerMatches, type Builtin, type Decision, type Flow, type Owner } from './flow.js';

/**
 * The policy settings a decision needs. `dns` is the IR's (present exactly
 * under `dns.proxy`) or the checked policy's (with `dnsForwarder` from
 * resolve), so the reference and the IR evaluators share this code.
 */
type Settings = Pick<Policy, 'mode' | 'default' | 'denyVerdict' | 'builtins'> & {
  dns?: IrDns | PolicyDns;
  dnsForwarder?: { group: string; gid?: number };
};

/** The forwarder's identity when the DNS guard is on (uid 0 and the forwarder's group), else undefined. */
function dnsGuard(p: Settings): Owner | undefined {
  const d = p.dns;
  if (!d) return undefined;
  if ('forwarder' in d) return d.forwarder;
  if (!d.proxy) return undefined;
  const g = p.dnsForwarder;
  return g ? { name: g.group, ...(g.gid !== undefined ? { id: g.gid } : {}) } : { name: 'egress-dns' };
}

const ROOT: Owner = { id: 0, name: 'root' };

/**
 * What the guard at the top of the output chain does with a flow to port 53
 * or 853 of an address that is not this host's (loopback here, as the
 * evaluators know no other local address): the forwarder's own DNS passes;
 * another program's query to port 53 is redirected to the forwarder (and so
 * answered through it); anything else — DNS over TLS — is rejected.
 */
function dnsStep(p: Settings, f: Flow): Builtin | undefined {
  if ((f.proto !== 'udp' && f.proto !== 'tcp') || (f.port !== 53 && f.port !== 853) || isLoopbackFlow(f)) return undefined;
  const fwd = dnsGuard(p);
  if (!fwd) return undefined;
  if (ownerMatches(ROOT, f.user) && ownerMatches(fwd, f.group)) return 'dns_forwarder';
  return f.port === 53 ? 'dns_redirect' : 'dns_bypass';
}

export function builtinFor(p: Settings, f: Flow): Builtin | undefined {
  const dns = dnsStep(p, f);
  if (dns) return dns;
  if (p.builtins.loopback && isLoopbackFlow(f)) return 'loopback';
  if (p.builtins.established && f.established) return 'established';
  if (p.builtins.icmpv6_nd && f.family === 'ipv6' && f.proto === 'icmp' && f.icmpType !== undefined && (ICMPV6_ND_TYPES as readonly number[]).includes(f.icmpType))
    return 'icmpv6_nd';
  return undefined;
}

/** A builtin's decision: every builtin accepts but the DNS guard's reject of DNS that bypasses the forwarder. */
export function builtinDecision(p: Settings, b: Builtin): Decision {
  return { verdict: b === 'dns_bypass' ? 'reject' : 'accept', audit: p.mode === 'audit', step: 'builtin', builtin: b, rules: [] };
}

/** Compose a decision from the matching denies and allows (each already filtered by except). */
export function decide(p: Settings, f: Flow, denies: () => RuleRef[], allows: () => RuleRef[]): Decision {
  const b = builtinFor(p, f);
  if (b) return builtinDecision(p, b);
  return decideMatched(p, denies(), allows());
}

/** The same, for callers that already collected the matches (the indexed evaluator's hot path). */
export function decideMatched(p: Settings, d: RuleRef[], a: RuleRef[]): Decision {
  const audit = p.mode === 'audit';
  if (d.length) return { verdict: p.denyVerdict, audit, step: 'deny', rules: d };
  if (a.length) return { verdict: 'accept', audit, step: 'allow', rules: a };
  return { verdict: p.default, audit, step: 'default', rules: [] };
}
