/**
 * What every backend implements. A backend reads only the IR; it declares up
 * front what it can express, and a rule using anything else is an
 * `unsupported-selector` error naming the rule, the selector and the backend —
 * never a silently wider or weaker ruleset (SPEC §2).
 */
import { error, type Diagnostic, type Result } from '../diag/diagnostic.js';
import type { Span } from '../diag/source.js';
import type { Ir, IrRule } from '../ir/types.js';
import type { SelectorName } from '../policy/ast.js';
import type { RuleRef } from '../policy/types.js';

export type Target = 'nft' | 'iptables' | 'windows' | 'wince' | 'wince-c';

/** The targets egress can load into a Linux kernel: `apply --backend`, the life cycle, lab and the kernel suite. */
export const LINUX_TARGETS = ['nft', 'iptables'] as const;
export type LinuxTarget = (typeof LINUX_TARGETS)[number];

/** Targets `compile` accepts: every SPEC target plus the `ir` debugging dump (an extension to SPEC). */
export const TARGETS = ['nft', 'iptables', 'windows', 'wince', 'wince-c', 'ir'] as const;
export type CompileTarget = (typeof TARGETS)[number];

export interface Artifact {
  /** The ruleset text, ready for the target's loader. */
  text: string;
  /** 1-based output line → the rule it came from, to map loader errors back to the policy. */
  lineMap: Map<number, RuleRef>;
}

export interface EmitOptions {
  /** wince: the private host the rules are for. */
  host?: string;
}

/** true = expressible; a string = why not (shown in the error and the docs). `dns`: names that follow DNS (`dns.proxy`). */
export type Capabilities = Record<SelectorName | 'except' | 'audit' | 'ipv6' | 'hostnames' | 'dns', true | string>;

/** A backend that can express every selector (the Linux backends). */
export const ALL_CAPABILITIES: Capabilities = {
  to: true,
  ports: true,
  icmp: true,
  user: true,
  group: true,
  via: true,
  family: true,
  except: true,
  audit: true,
  ipv6: true,
  hostnames: true,
  dns: true,
};

export interface Backend {
  name: Target;
  capabilities: Capabilities;
  emit(ir: Ir, opts?: EmitOptions): Result<Artifact>;
}

export function unsupported(rule: IrRule, selector: keyof Capabilities, backend: Target, why: string, span?: Span): Diagnostic {
  const at = span ?? (selector in rule.keySpans ? rule.keySpans[selector as SelectorName | 'except'] : undefined) ?? rule.origin.span;
  return error('unsupported-selector', `rule "${rule.origin.name}": selector "${selector}" cannot be expressed by backend "${backend}"`, at, {
    hint: why,
  });
}

/**
 * The errors of a backend that cannot express `dns.proxy` (`why` is its
 * capability text): one for the setting, and one per rule whose names would
 * follow DNS — never a silent fallback to names resolved at load.
 */
export function unsupportedDns(ir: Ir, backend: Target, why: true | string): Diagnostic[] {
  if (!ir.dns || why === true) return [];
  const hint = `${why}; use --target nft, or "dns.proxy: false" (exact names are then resolved when the ruleset loads; wildcards cannot be used)`;
  const out: Diagnostic[] = [error('unsupported-selector', `"dns.proxy" cannot be expressed by backend "${backend}"`, ir.dns.span, { hint })];
  const seen = new Set<string>();
  for (const r of ir.rules) {
    const dns = r.sets?.find((s) => s.kind === 'dns');
    if (!dns || seen.has(r.origin.name)) continue;
    seen.add(r.origin.name);
    const names = (dns.patterns ?? []).map((p) => `"${p}"`).join(', ');
    out.push(
      error('unsupported-selector', `rule "${r.origin.name}": selector "to" with names that follow DNS (${names}) cannot be expressed by backend "${backend}"`, r.keySpans.to ?? r.origin.span, { hint }),
    );
  }
  const refused = new Map<string, { span: Span; names: string[] }>();
  for (const x of ir.dns.refused) {
    const e = refused.get(x.origin.name) ?? { span: x.origin.span, names: [] };
    e.names.push(`"${x.pattern}"`);
    refused.set(x.origin.name, e);
  }
  for (const [name, e] of refused)
    out.push(
      error('unsupported-selector', `rule "${name}": selector "to" with names answered REFUSED by the DNS forwarder (${e.names.join(', ')}) cannot be expressed by backend "${backend}"`, e.span, { hint }),
    );
  return out;
}

/** Build an Artifact line by line while recording which rule each line came from. */
export class ArtifactWriter {
  private readonly lines: string[] = [];
  readonly lineMap = new Map<number, RuleRef>();
  line(text: string, origin?: RuleRef): void {
    for (const l of text.split('\n')) {
      this.lines.push(l);
      if (origin) this.lineMap.set(this.lines.length, origin);
    }
  }
  artifact(): Artifact {
    return { text: this.lines.join('\n') + '\n', lineMap: this.lineMap };
  }
}

/**
 * The errors of a backend that has no forward hook (SPEC §6): one for the
 * `forward:` setting and one per rule whose `from` names a forward source —
 * never a policy that silently governs only the host's own traffic.
 */
export function unsupportedForward(ir: Ir, backend: Target, why: string): Diagnostic[] {
  if (!ir.forward) return [];
  const hint = `${why}; use --target nft or iptables, or compile a copy of the policy without "forward" and without forward sources in "from"`;
  const out: Diagnostic[] = [error('unsupported-selector', `"forward" (forwarded traffic of containers and VMs) cannot be expressed by backend "${backend}"`, ir.forward.span, { hint })];
  const seen = new Set<string>();
  for (const r of ir.forward.rules) {
    if (seen.has(r.origin.name)) continue;
    seen.add(r.origin.name);
    out.push(error('unsupported-selector', `rule "${r.origin.name}": selector "from" (${(r.from ?? []).map((x) => `"${x}"`).join(', ')}) cannot be expressed by backend "${backend}"`, r.keySpans.from ?? r.origin.span, { hint }));
  }
  return out;
}

/** From this many rules in its chains on, an iptables ruleset warns what its linear chain costs (iptables-linear); check notes it from this many destinations. */
export const IPTABLES_LINEAR_WARN = 1000;
