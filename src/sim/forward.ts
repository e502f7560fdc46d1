/**
 * SPEC §6 for a forwarded packet (a container's or VM's, routed by this
 * host), in one place for the IR evaluators and the reference evaluator:
 *  1. established/related (and TCP picked up mid-stream) passes, as for the host;
 *  2. a flow into a source (out through one of the sources' interfaces, or to
 *     one of their networks) is not egress: it passes (other firewalls judge it);
 *  3. a flow from no source is "unlisted": warn and accept let it through, deny denies;
 *  4. else, over the rules whose `from` names one of its sources: deny wins,
 *     then allow, then `forward.default`.
 * Owners never match (a forwarded packet has no socket owner: such rules are
 * refused when the policy is checked).
 */
import { intervalsContain, mergeIntervals, type Family, type Interval } from '../policy/address.js';
import type { IrForward, IrMatch, IrRule } from '../ir/types.js';
import type { Policy, PolicyForward, RuleRef } from '../policy/types.js';
import { decideMatched } from './decide.js';
import { ifaceMatches, type Decision, type Flow } from './flow.js';

/** A source as membership needs it: the IR's, or the checked policy's (reference evaluator). */
export interface SourceShape {
  name: string;
  interfaces: readonly string[];
  networks?: Record<Family, readonly Interval[]>;
  families: readonly Family[];
}

/**
 * The sources a forwarded flow belongs to: named outright (`explain --from
 * NAME`), or by its input interface and source address. An interface or
 * address the flow does not give is taken as met.
 */
export function sourcesOf(sources: readonly SourceShape[], f: Flow): string[] {
  const fw = f.forwarded;
  if (!fw) return [];
  const out: string[] = [];
  for (const s of sources) {
    if (fw.source !== undefined && fw.source !== s.name) continue;
    if (!s.families.includes(f.family)) continue;
    if (fw.in !== undefined && s.interfaces.length && !s.interfaces.some((g) => ifaceMatches(g, fw.in))) continue;
    if (fw.src !== undefined && s.networks?.[f.family].length && !intervalsContain(s.networks[f.family] as Interval[], fw.src)) continue;
    out.push(s.name);
  }
  return out;
}

/** Into a source: out through a source's interface, or to a source's network. */
export function intoSource(sources: readonly SourceShape[], f: Flow): boolean {
  return sources.some((s) => (f.via !== undefined && s.interfaces.some((g) => ifaceMatches(g, f.via))) || (s.networks !== undefined && intervalsContain(s.networks[f.family] as Interval[], f.dst)));
}

/** `dnsProxy`: under `dns.proxy`, DNS from sources with interfaces is redirected to the forwarder (SPEC §5). */
type Settings = Pick<Policy, 'mode' | 'builtins'> & { dnsProxy?: boolean };

/**
 * The decision for a forwarded flow; `denies`/`allows` list the matching
 * rules (excepts applied) among those governing `sources`.
 */
export function decideForward(
  p: Settings,
  fwd: Pick<IrForward, 'default' | 'denyVerdict' | 'unlisted'> & { sources: readonly SourceShape[] },
  f: Flow,
  denies: (sources: string[]) => RuleRef[],
  allows: (sources: string[]) => RuleRef[],
): Decision {
  const audit = p.mode === 'audit';
  if (p.builtins.established && f.established) return { verdict: 'accept', audit, step: 'builtin', builtin: 'established', rules: [], sources: [] };
  if (p.dnsProxy && (f.proto === 'udp' || f.proto === 'tcp') && (f.port === 53 || f.port === 853)) {
    // Prerouting: DNS from a source with interfaces goes to the forwarder; DNS over TLS (853) that would bypass it is rejected.
    const redirected = sourcesOf(fwd.sources, f).filter((n) => fwd.sources.find((s) => s.name === n)!.interfaces.length > 0);
    if (redirected.length)
      return f.port === 53
        ? { verdict: 'accept', audit, step: 'builtin', builtin: 'dns_redirect', rules: [], sources: redirected }
        : { verdict: 'reject', audit, step: 'builtin', builtin: 'dns_bypass', rules: [], sources: redirected };
  }
  if (intoSource(fwd.sources, f)) return { verdict: 'accept', audit, step: 'builtin', builtin: 'into_source', rules: [], sources: [] };
  const sources = sourcesOf(fwd.sources, f);
  if (sources.length === 0) {
    const verdict = fwd.unlisted === 'deny' ? fwd.denyVerdict : 'accept';
    return { verdict, audit, step: 'unlisted', rules: [], sources };
  }
  const d = decideMatched({ mode: p.mode, builtins: p.builtins, default: fwd.default, denyVerdict: fwd.denyVerdict }, denies(sources), allows(sources));
  return { ...d, sources };
}

/** Without `forward:` nothing governs forwarded traffic: every forwarded flow is from no source, and passes. */
export const UNGOVERNED = { sources: [], default: 'accept', denyVerdict: 'reject', unlisted: 'accept' } as const;

/** The IR evaluators' forward step: a scan of the forward rules (there are few; no index needed). */
export function irForwardDecision(ir: Pick<Policy, 'mode' | 'builtins'> & { forward?: IrForward; dns?: unknown }, f: Flow, matches: (m: IrMatch, f: Flow) => boolean): Decision {
  const fwd = ir.forward;
  const p: Settings = { mode: ir.mode, builtins: ir.builtins, dnsProxy: ir.dns !== undefined };
  if (!fwd) return decideForward(p, UNGOVERNED, f, () => [], () => []);
  const governing = (r: IrRule, sources: string[]) => r.family === f.family && (r.from ?? []).some((s) => sources.includes(s)) && matches(r, f);
  return decideForward(
    p,
    fwd,
    f,
    (s) => sortRefs(fwd.rules.filter((r) => r.origin.action === 'deny' && governing(r, s) && !r.except.some((e) => matches(e, f))).map((r) => r.origin)),
    (s) => sortRefs(fwd.rules.filter((r) => r.origin.action === 'allow' && governing(r, s)).map((r) => r.origin)),
  );
}

/** The checked policy's sources as SourceShape (reference evaluator). */
export function policySources(fwd: PolicyForward): SourceShape[] {
  return fwd.sources.map((s) => {
    const shape: SourceShape = { name: s.name, interfaces: s.interfaces.map((i) => i.name), families: ['ipv4', 'ipv6'] };
    if (s.networks) {
      const networks = { ipv4: mergeIntervals(s.networks.filter((n) => n.family === 'ipv4')), ipv6: mergeIntervals(s.networks.filter((n) => n.family === 'ipv6')) };
      shape.networks = networks;
      // Networks narrow the families they name; with interfaces, another family is matched by interface alone.
      if (!shape.interfaces.length) shape.families = (['ipv4', 'ipv6'] as const).filter((fam) => networks[fam].length > 0);
    }
    return shape;
  });
}

/** Rule refs by name (a rule has one forward twin per family, so no name repeats). */
function sortRefs(xs: RuleRef[]): RuleRef[] {
  return xs.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
