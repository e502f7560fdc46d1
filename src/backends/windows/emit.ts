/**
 * Backend `windows`: a PowerShell script for Windows Defender Firewall
 * (NetSecurity module). Every rule is `New-NetFirewallRule -Direction
 * Outbound` in the rule group "egress"; running the script replaces that
 * group and changes no other rule. It also sets, on all three profiles:
 * firewall on, default outbound action Block (Allow for `default: accept`),
 * and logging of dropped packets (pfirewall.log). Each Windows rule takes
 * IPv4 and IPv6 destinations together; a rule limited to one family gets
 * that family's whole range instead of "Any".
 *
 * Windows Firewall lets block rules win over allow rules, as our deny does.
 * A deny's `except` cannot ride on a block rule, so it is compiled as the
 * deny minus its excepts: cut out of the destinations or ports, or as users
 * the rule skips (a deny ACE before "Everyone" in the rule's -LocalUser SDDL).
 * That relies on the firewall evaluating the SDDL as an access check, which
 * honours deny ACEs; were a deny ACE ignored, the exempt user would be
 * blocked too — stricter, never wider.
 *
 * Cannot express (each an `unsupported-selector` error naming rule, selector
 * and backend; reasons in WINDOWS_CAPABILITIES, details in
 * docs/backends-windows.md):
 *   user: <number>  uids mean nothing on Windows; name the account (its SID
 *                   is looked up on the target when the script runs)
 *   group           SDDL matches any group in the token, not the socket's
 *                   primary group as on Linux: allows would widen
 *   via             interface names differ per OS; not mapped
 *   ports: sctp/N   Windows takes ports for TCP and UDP only (bare sctp is fine)
 *   except          when "deny minus except" has no finite form (every
 *                   protocol / ICMP type but some), cuts through hostnames,
 *                   or names a group, interface or numeric user
 *   mode: audit     Windows logs allowed connections only wholesale
 *   builtins off    Windows never filters loopback, always admits replies,
 *                   and ships its own neighbour-discovery allow rules
 *   dns.proxy       no sets a DNS forwarder could fill, no redirect of DNS
 *                   (the setting and each rule with such names)
 * Not errors, but said in the script and the docs: allow rules in other
 * groups still let their traffic out (the script counts them); a Windows
 * block makes connect() fail at once, so drop and reject look alike; no log
 * prefix, rate limit or per-rule counters.
 */
import { error, type Diagnostic, type Result } from '../../diag/diagnostic.js';
import { formatInterval, type Family, type Interval } from '../../policy/address.js';
import { ICMPV6_ND_TYPES } from '../../policy/protocols.js';
import type { Ir, IrMatch, IrRule } from '../../ir/types.js';
import type { RuleRef } from '../../policy/types.js';
import { ArtifactWriter, unsupported, unsupportedDns, unsupportedForward, type Backend, type Capabilities, type Target } from '../types.js';
import { psString } from './quote.js';
import { regionFromIr, subtractRegions, type Region, type UserRegion } from './region.js';
import { FOREIGN_ALLOW_CHECK, GROUP, PRELUDE } from './script.js';

const TARGET: Target = 'windows';

export const WINDOWS_CAPABILITIES: Capabilities = {
  to: true,
  ports: true,
  icmp: true,
  user: true,
  family: true,
  except: true,
  ipv6: true,
  hostnames: true,
  group: 'Windows matches a rule\'s -LocalUser SDDL against every group in the process token, Linux matches the socket\'s group: an allow would admit more',
  via: 'interface names differ between Linux and Windows (-InterfaceAlias); not mapped',
  audit: 'Windows Firewall cannot log what a block rule would drop while letting it through; log everything with LogAllowed and use "egress replay" instead',
  dns: 'Windows Firewall rules hold fixed addresses that no DNS forwarder of egress can fill, and cannot redirect DNS',
};

/** One New-NetFirewallRule. */
export interface WinRule {
  origin: RuleRef;
  action: 'Allow' | 'Block';
  protocol: string;
  ports?: string[];
  icmpTypes?: number[];
  users: UserRegion;
  /** Per family: 'any', or literal destinations plus hostnames resolved on the target. */
  dst: Partial<Record<Family, 'any' | { literal: string[]; hosts: string[] }>>;
  description: string;
}

const ANY: Record<Family, string> = { ipv4: '0.0.0.0-255.255.255.255', ipv6: '::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff' };

export const windowsBackend: Backend = {
  name: TARGET,
  capabilities: WINDOWS_CAPABILITIES,
  emit(ir: Ir) {
    const dns = [...unsupportedDns(ir, TARGET, WINDOWS_CAPABILITIES.dns), ...unsupportedForward(ir, TARGET, 'Windows Firewall rules here govern this host\'s own connections; its forwarded traffic (Hyper-V, WSL, containers) is not filtered by them')];
    const plan = emitWinRules(ir);
    if (!plan.value || dns.length) return { diagnostics: [...dns, ...plan.diagnostics] };
    return { value: writeScript(ir, plan.value.blocks, plan.value.allows), diagnostics: [] };
  },
};

/** The Windows rules of a policy (block rules, allow rules), or why it cannot be written. */
export function emitWinRules(ir: Ir): Result<{ blocks: WinRule[]; allows: WinRule[] }> {
  const diagnostics = checkPolicy(ir);
  const seen = new Set<string>();
  const refused = new Set<string>();
  for (const r of ir.rules)
    for (const d of checkRule(r)) {
      const k = `${r.origin.name}\0${d.message}\0${d.hint}`;
      if (!seen.has(k)) diagnostics.push(d);
      seen.add(k);
      refused.add(r.origin.name);
    }
  // Rules that passed the checks are still split, so every problem is reported in one run.
  const blocks: WinRule[] = [];
  const allows: WinRule[] = [];
  for (const r of ir.rules) {
    if (refused.has(r.origin.name)) continue;
    const regions = ruleRegions(r, diagnostics);
    for (const region of regions) (r.origin.action === 'deny' ? blocks : allows).push(...winRules(region, r));
  }
  if (diagnostics.length) return { diagnostics };
  return { value: { blocks: merge(blocks), allows: merge(allows) }, diagnostics: [] };
}

function checkPolicy(ir: Ir): Diagnostic[] {
  const out: Diagnostic[] = [];
  if (ir.mode === 'audit') out.push(error('unsupported-selector', `mode "audit" cannot be expressed by backend "${TARGET}"`, undefined, { hint: WINDOWS_CAPABILITIES.audit as string }));
  const builtins: [keyof Ir['builtins'], string][] = [
    ['loopback', 'Windows Firewall does not filter loopback traffic'],
    ['established', 'Windows Firewall always admits packets of connections it has allowed'],
    ['icmpv6_nd', 'Windows ships enabled neighbour-discovery allow rules ("Core Networking") outside the egress group, which egress does not touch'],
  ];
  for (const [b, why] of builtins)
    if (!ir.builtins[b]) out.push(error('unsupported-selector', `builtin "${b}: false" cannot be expressed by backend "${TARGET}"`, undefined, { hint: why }));
  return out;
}

function checkRule(r: IrRule): Diagnostic[] {
  const out: Diagnostic[] = [];
  const numeric = (m: IrMatch) => m.users?.filter((u) => u.name === undefined).map((u) => String(u.id)) ?? [];
  if (numeric(r).length) out.push(unsupported(r, 'user', TARGET, `numeric ids (${numeric(r).join(', ')}) mean nothing on Windows; name the account instead`));
  if (r.groups) out.push(unsupported(r, 'group', TARGET, WINDOWS_CAPABILITIES.group as string));
  if (r.via) out.push(unsupported(r, 'via', TARGET, WINDOWS_CAPABILITIES.via as string));
  if (sctpPorts(r)) out.push(unsupported(r, 'ports', TARGET, 'Windows Firewall takes ports for TCP and UDP only; sctp can be matched only as a whole protocol'));
  for (const e of r.except) {
    const why = e.groups
      ? `an except on group: ${WINDOWS_CAPABILITIES.group as string}`
      : e.via
        ? `an except on via: ${WINDOWS_CAPABILITIES.via as string}`
        : numeric(e).length
          ? `an except on numeric user ids (${numeric(e).join(', ')}): name the accounts instead`
          : sctpPorts(e)
            ? 'an except on sctp ports: Windows takes ports for TCP and UDP only'
            : undefined;
    if (why) out.push(unsupported(r, 'except', TARGET, why));
  }
  if (r.untilSec !== undefined)
    out.push(error('unsupported-selector', `rule "${r.origin.name}": "expires" cannot be expressed by backend "${TARGET}"`, r.origin.span, { hint: 'Windows Firewall rules have no end date: the rule would keep admitting after it; leave "expires" out, or remove the rule on its date' }));
  for (const s of [r.reason ?? '', ...(r.users ?? []).map((u) => u.name ?? ''), ...(r.hosts ?? [])])
    if (psString(s) === undefined)
      out.push(error('unsupported-selector', `rule "${r.origin.name}": a value cannot be carried by backend "${TARGET}"`, r.origin.span, { hint: 'it contains a NUL character or an unpaired UTF-16 surrogate' }));
  return out;
}

function sctpPorts(m: IrMatch): boolean {
  return !!m.l4?.ports.some((p) => p.proto === 'sctp' && !(p.ranges.length === 1 && p.ranges[0]![0] === 0 && p.ranges[0]![1] === 65535));
}

/**
 * A rule's flow space for Windows: destinations as written (literals), with
 * hostnames kept as names for the target to resolve; a deny minus its excepts.
 */
function ruleRegions(r: IrRule, diagnostics: Diagnostic[]): Region[] {
  const region = (m: IrMatch): Region => {
    const reg = regionFromIr(m, r.family);
    if (m.hosts?.length) reg.dst = literalDst(m);
    return reg;
  };
  if (r.origin.action === 'allow') return [region(r)];
  const d = subtractRegions([region(r)], r.except.map(region));
  if (!('inexpressible' in d)) return d;
  const why =
    d.inexpressible === 'hostnames'
      ? 'it would cut through destinations given as hostnames, which are only known when the script runs'
      : `this deny minus its except would be "every ${d.inexpressible === 'icmp' ? 'ICMP type' : 'protocol'} but these", which a Windows block rule cannot hold`;
  diagnostics.push(unsupported(r, 'except', TARGET, why));
  return [];
}

/** The destinations of a match that were written as addresses (not reached through a hostname). */
function literalDst(m: IrMatch): Interval[] {
  return m.sets?.find((s) => s.kind === 'addresses')?.elements ?? [];
}

/** One Windows rule per protocol of a region (ICMP per family, by protocol). */
function winRules(region: Region, r: IrRule): WinRule[] {
  const fam = region.family;
  const dst: WinRule['dst'] = {
    [fam]: region.dst === undefined && !region.hosts?.length ? 'any' : { literal: (region.dst ?? []).map((x) => formatInterval(fam, x)), hosts: region.hosts ?? [] },
  };
  const base = { origin: r.origin, action: r.origin.action === 'deny' ? ('Block' as const) : ('Allow' as const), users: region.users, dst, description: r.reason ?? `egress rule ${r.origin.name}` };
  if (region.l4 === 'any') return [{ ...base, protocol: 'Any' }];
  const out: WinRule[] = [];
  for (const proto of ['tcp', 'udp', 'sctp'] as const) {
    const ranges = region.l4.ports[proto];
    if (!ranges?.length) continue;
    const name = proto === 'sctp' ? '132' : proto.toUpperCase();
    const whole = ranges.length === 1 && ranges[0]![0] === 0 && ranges[0]![1] === 65535;
    out.push(whole ? { ...base, protocol: name } : { ...base, protocol: name, ports: ranges.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)) });
  }
  const icmp = fam === 'ipv4' ? 'ICMPv4' : 'ICMPv6';
  if (region.l4.icmp === 'any') out.push({ ...base, protocol: icmp });
  else if (region.l4.icmp.length) out.push({ ...base, protocol: icmp, icmpTypes: [...region.l4.icmp] });
  return out;
}

/** The IPv4 and IPv6 halves of the same rule, protocol, ports and users become one Windows rule. */
function merge(rules: WinRule[]): WinRule[] {
  const out: WinRule[] = [];
  const byKey = new Map<string, WinRule>();
  for (const w of rules) {
    const k = JSON.stringify([w.origin.name, w.action, w.protocol, w.ports, w.icmpTypes, w.users]);
    const prev = byKey.get(k);
    const fam = Object.keys(w.dst)[0] as Family;
    if (prev && !prev.dst[fam]) prev.dst[fam] = w.dst[fam]!;
    else {
      const copy = { ...w, dst: { ...w.dst } };
      byKey.set(k, copy);
      out.push(copy);
    }
  }
  return out;
}

function writeScript(ir: Ir, blocks: WinRule[], allows: WinRule[]): ReturnType<ArtifactWriter['artifact']> {
  const w = new ArtifactWriter();
  const q = (s: string) => psString(s)!;
  const blocking = ir.default !== 'accept';
  w.line('# egress: outbound policy for Windows Defender Firewall');
  w.line('# generated by "egress compile --target windows"; run it in an elevated PowerShell.');
  w.line(`# Every rule is in the rule group '${GROUP}': running this script replaces that group and no other rule.`);
  w.line(`# It also sets, on all profiles: firewall on, default outbound action ${blocking ? 'Block' : 'Allow'}, logging of dropped packets.`);
  w.line(`# mode ${ir.mode}, default ${ir.default}; a Windows block makes connect() fail at once, so reject and drop look alike.`);
  w.line(PRELUDE);

  // Everything the rules need from this host, looked up before anything changes.
  const sids = new Map<string, string>();
  const hostVars = new Map<string, string>();
  for (const x of [...blocks, ...allows]) {
    for (const n of [...(x.users.allow === 'all' ? [] : x.users.allow), ...x.users.deny]) if (!sids.has(n)) sids.set(n, `$sid${sids.size + 1}`);
    for (const fam of ['ipv4', 'ipv6'] as const) {
      const d = x.dst[fam];
      if (d && d !== 'any') for (const h of d.hosts) if (!hostVars.has(`${h} ${fam}`)) hostVars.set(`${h} ${fam}`, `$host${hostVars.size + 1}`);
    }
  }
  w.line('');
  if (sids.size || hostVars.size) {
    w.line('# Accounts and hostnames, resolved on this host before anything is changed.');
    w.line('');
  }
  for (const [name, v] of sids) w.line(`${v} = Resolve-EgressSid ${q(name)}`);
  for (const [key, v] of hostVars) {
    const [name, fam] = key.split(' ') as [string, Family];
    const known = ir.hosts.find((h) => h.name === name)?.[fam] ?? [];
    w.line(`${v} = Resolve-EgressHost ${q(name)} '${fam}' @(${known.map(q).join(', ')})`);
  }
  if (sids.size || hostVars.size) w.line('');
  w.line('# Profiles.');
  w.line(`Set-NetFirewallProfile -Profile Domain, Private, Public -Enabled True -DefaultOutboundAction ${blocking ? 'Block' : 'Allow'} -LogBlocked True`);
  w.line('');
  w.line(`# Replace the group: remove the old rules, then blocks before allows, so a failure half-way leaves the host stricter, not wider.`);
  w.line('Get-NetFirewallRule -Group $Group -ErrorAction SilentlyContinue | Remove-NetFirewallRule');
  const names = ruleNames([...blocks, ...allows]);
  for (const x of [...blocks, ...allows]) {
    w.line('');
    w.line(`# ${x.action === 'Block' ? 'deny' : 'allow'} rule "${x.origin.name}"`, x.origin);
    w.line(ruleLine(x, names.get(x)!, sids, hostVars), x.origin);
  }
  if (blocking && ir.builtins.icmpv6_nd) {
    w.line('');
    w.line('# builtin icmpv6_nd: IPv6 neighbour and router discovery, MLD');
    w.line(`New-EgressRule @{ Name = 'egress.icmpv6-nd'; DisplayName = 'egress builtin icmpv6_nd'; Description = 'IPv6 neighbour discovery (egress builtin)'; Action = 'Allow'; Protocol = 'ICMPv6'; IcmpType = @(${ICMPV6_ND_TYPES.map((t) => `'${t}'`).join(', ')}) }`);
  }
  if (blocking) {
    w.line('');
    w.line(FOREIGN_ALLOW_CHECK);
  }
  w.line('');
  w.line(`Write-Host ('egress: ' + ${[...blocks, ...allows].length + (blocking && ir.builtins.icmpv6_nd ? 1 : 0)} + ' rules in group ' + $Group)`);
  return w.artifact();
}

/** egress-<rule> when a policy rule needs one Windows rule, egress-<rule>-<n> when it needs more. */
function ruleNames(rules: WinRule[]): Map<WinRule, string> {
  const count = new Map<string, number>();
  for (const r of rules) count.set(r.origin.name, (count.get(r.origin.name) ?? 0) + 1);
  const n = new Map<string, number>();
  const out = new Map<WinRule, string>();
  for (const r of rules) {
    const i = (n.get(r.origin.name) ?? 0) + 1;
    n.set(r.origin.name, i);
    out.set(r, count.get(r.origin.name) === 1 ? `egress-${r.origin.name}` : `egress-${r.origin.name}-${i}`);
  }
  return out;
}

function ruleLine(x: WinRule, name: string, sids: Map<string, string>, hostVars: Map<string, string>): string {
  const q = (s: string) => psString(s)!;
  const parts = [`Name = ${q(name)}`, `DisplayName = ${q(`egress ${x.origin.name}`)}`, `Description = ${q(x.description)}`, `Action = '${x.action}'`, `Protocol = '${x.protocol}'`];
  if (x.ports) parts.push(`RemotePort = @(${x.ports.map((p) => `'${p}'`).join(', ')})`);
  if (x.icmpTypes) parts.push(`IcmpType = @(${x.icmpTypes.map((t) => `'${t}'`).join(', ')})`);
  const sddl = localUser(x.users, sids);
  if (sddl) parts.push(`LocalUser = ${sddl}`);
  const fams = (['ipv4', 'ipv6'] as const).filter((f) => x.dst[f]);
  const icmp = x.protocol.startsWith('ICMP');
  // "Any" covers both families: only when both halves are unlimited (or the protocol fixes the family).
  const unlimited = fams.every((f) => x.dst[f] === 'any') && (fams.length === 2 || icmp);
  const literal: string[] = [];
  const runtime: string[] = [];
  if (!unlimited)
    for (const f of fams) {
      const d = x.dst[f]!;
      if (d === 'any') literal.push(ANY[f]);
      else {
        literal.push(...d.literal);
        runtime.push(...d.hosts.map((h) => hostVars.get(`${h} ${f}`)!));
      }
    }
  const lit = `@(${literal.map((a) => `'${a}'`).join(', ')})`;
  if (runtime.length) return `New-EgressRuleTo @{ ${parts.join('; ')} } (${[lit, ...runtime].join(' + ')})`;
  if (literal.length) parts.push(`RemoteAddress = ${lit}`);
  return `New-EgressRule @{ ${parts.join('; ')} }`;
}

/**
 * The rule's -LocalUser SDDL, as a PowerShell expression over the SID
 * variables: deny ACEs first (users an except exempts), then the users the
 * rule is for, or Everyone (WD). undefined = every user (no -LocalUser).
 */
function localUser(u: UserRegion, sids: Map<string, string>): string | undefined {
  if (u.allow === 'all' && u.deny.length === 0) return undefined;
  const ace = (kind: 'A' | 'D', n: string) => `'(${kind};;CC;;;' + ${sids.get(n)!} + ')'`;
  const parts = ["'O:LSD:'", ...u.deny.map((n) => ace('D', n)), ...(u.allow === 'all' ? ["'(A;;CC;;;WD)'"] : u.allow.map((n) => ace('A', n)))];
  return `(${parts.join(' + ')})`;
}

