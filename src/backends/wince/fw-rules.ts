/**
 * Ir → the FW_RULE list for one private host, shared by the `wince` and
 * `wince-c` writers. See emit.ts for what the target cannot express.
 *
 * How the CE firewall's rule interaction is used (docs/backends-windows.md):
 * outbound traffic passes unless a block rule matches, and an allow rule
 * overrides a block rule that is less specific (the documentation's
 * "Restricting Outbound Traffic to Selected TCP Ports" and the default
 * AllowICMP_ECHO_REQUEST-over-BlockOutboundICMP rules). Nothing documents a
 * block winning over an overlapping allow, which our deny needs. So we never
 * let one overlap one: every allow is emitted minus every deny (a region
 * difference), the denies as blocks, and the `default` as one block on the
 * whole host, which every emitted allow is strictly more specific than. An
 * allow minus a deny that has no finite FW_RULE form is refused, naming both.
 */
import { error, hasErrors, warning, type Diagnostic, type Result } from '../../diag/diagnostic.js';
import { FAMILIES, formatAddress, parseAddress, type Family, type Interval } from '../../policy/address.js';
import { PROTO_NUMBER } from '../../policy/protocols.js';
import type { Ir, IrMatch, IrRule } from '../../ir/types.js';
import { unsupported, unsupportedDns, unsupportedForward, type Capabilities, type EmitOptions, type Target } from '../types.js';
import { regionFromIr, regionIsEverything, subtractRegions, type Inexpressible, type Region } from '../windows/region.js';
import { bitsOf, type FwAddress, type FwRule } from './fw-rule.js';

/** Shared by `wince` and `wince-c`: one firewall, two spellings. */
export const WINCE_CAPABILITIES: Capabilities = {
  to: true,
  ports: true,
  icmp: true,
  family: true,
  except: true,
  ipv6: true,
  user: 'the gateway sees packets from the private host, not which account on the host sent them',
  group: 'the gateway sees packets from the private host, not which group on the host sent them',
  via: 'FW_RULE has no interface field: the firewall applies to every firewalled interface alike (FirewallSetInterface)',
  audit: 'FW_RULE can block, allow or log, but not log what a block would drop while letting it through',
  hostnames: 'FW_RULE holds fixed addresses, read when the firewall loads its rules, so a name could not be refreshed in place',
  dns: 'FW_RULE holds fixed addresses, read when the firewall loads its rules, so no DNS forwarder could add what it answers',
};

/** More would not fit a registry anyone can review; a policy that needs it is split wrongly for this target. */
export const MAX_FW_RULES = 4096;

export interface FwPlan {
  rules: FwRule[];
  /** The private host's address in each family given with --host. */
  hosts: Partial<Record<Family, FwAddress>>;
  /** Families the policy governs but --host gave no address for: not covered by these rules. */
  uncovered: Family[];
  /** Per family: the default verdict is accept or an allow admits everything, so only blocks are emitted. */
  allowsOmitted: Family[];
}

interface Piece {
  region: Region;
  rule: IrRule;
}

export function parseHosts(text: string | undefined, target: Target): Result<Partial<Record<Family, FwAddress>>> {
  const diagnostics: Diagnostic[] = [];
  const hosts: Partial<Record<Family, FwAddress>> = {};
  if (!text) return { diagnostics: [error('bad-address', `backend "${target}" needs --host ADDR (the private host the rules are for)`)] };
  for (const raw of text.split(',')) {
    const a = parseAddress(raw.trim());
    if (!a) diagnostics.push(error('bad-address', `--host ${JSON.stringify(raw.trim())} is not an IPv4 or IPv6 address`, undefined, { hint: 'give one address per family, e.g. --host 192.168.0.101,2001:db8::65' }));
    else if (hosts[a.family]) diagnostics.push(error('bad-address', `--host gives two ${a.family} addresses; the rules are for one host`));
    else hosts[a.family] = { family: a.family, value: a.value };
  }
  return diagnostics.length ? { diagnostics } : { value: hosts, diagnostics };
}

/** What this target cannot express anywhere in the policy: checked before any rule is split. */
function checkPolicy(ir: Ir, target: Target): Diagnostic[] {
  const out: Diagnostic[] = [];
  if (ir.mode === 'audit') out.push(error('unsupported-selector', `mode "audit" cannot be expressed by backend "${target}"`, undefined, { hint: WINCE_CAPABILITIES.audit as string }));
  const builtins: [keyof Ir['builtins'], string][] = [
    ['loopback', 'loopback traffic never reaches the gateway'],
    ['established', 'the CE firewall always lets replies to connections the private host opened through (FWA_ALLOW_RESPONSE)'],
    ['icmpv6_nd', 'neighbour discovery stays on the private link and never crosses the gateway'],
  ];
  for (const [b, why] of builtins)
    if (!ir.builtins[b]) out.push(error('unsupported-selector', `builtin "${b}: false" cannot be expressed by backend "${target}"`, undefined, { hint: why }));
  out.push(...unsupportedDns(ir, target, WINCE_CAPABILITIES.dns));
  out.push(...unsupportedForward(ir, target, 'the CE gateway\'s FW_RULE entries are written for one private host (--host), not for named groups of forwarded traffic'));
  return out;
}

/** Selectors of one rule (and its excepts) the target cannot express. */
function checkRule(r: IrRule, target: Target): Diagnostic[] {
  const out: Diagnostic[] = [];
  const cap = WINCE_CAPABILITIES;
  if (r.users) out.push(unsupported(r, 'user', target, cap.user as string));
  if (r.groups) out.push(unsupported(r, 'group', target, cap.group as string));
  if (r.via) out.push(unsupported(r, 'via', target, cap.via as string));
  if (r.hosts) out.push(unsupported(r, 'to', target, `hostnames (${r.hosts.join(', ')}): ${cap.hostnames as string}`));
  if (r.untilSec !== undefined)
    out.push(error('unsupported-selector', `rule "${r.origin.name}": "expires" cannot be expressed by backend "${target}"`, r.origin.span, { hint: 'FW_RULE entries have no end date: the rule would keep admitting after it; leave "expires" out, or remove the rule on its date' }));
  if (r.reason?.includes('\0'))
    out.push(error('unsupported-selector', `rule "${r.origin.name}": its reason cannot be carried by backend "${target}"`, r.origin.span, { hint: 'it contains a NUL character, which would end the FW_RULE description early' }));
  if (sctpPorts(r)) out.push(unsupported(r, 'ports', target, 'FW_RULE port ranges (FWM_PORT) apply to TCP and UDP only; sctp can be matched only as a whole protocol'));
  for (const e of r.except) {
    const what = e.users ? 'user' : e.groups ? 'group' : e.via ? 'via' : e.hosts ? 'hostnames' : sctpPorts(e) ? 'sctp ports' : undefined;
    if (what) out.push(unsupported(r, 'except', target, `an except on ${what}: ${what === 'sctp ports' ? 'FWM_PORT applies to TCP and UDP only' : (cap[what === 'hostnames' ? 'hostnames' : what] as string)}`));
  }
  return out;
}

function sctpPorts(m: IrMatch): boolean {
  return !!m.l4?.ports.some((p) => p.proto === 'sctp' && !(p.ranges.length === 1 && p.ranges[0]![0] === 0 && p.ranges[0]![1] === 65535));
}

/** The FW_RULE list for the private host(s) in opts.host, or the reasons it cannot be written. */
export function emitFwRules(ir: Ir, opts: EmitOptions | undefined, target: Target): Result<FwPlan> {
  const parsed = parseHosts(opts?.host, target);
  if (!parsed.value) return parsed as Result<FwPlan>;
  const hosts = parsed.value;
  const diagnostics = checkPolicy(ir, target);
  const seen = new Set<string>();
  const refused = new Set<string>();
  for (const r of ir.rules)
    for (const d of checkRule(r, target)) {
      const k = `${r.origin.name}\0${d.message}`;
      if (!seen.has(k)) diagnostics.push(d);
      seen.add(k);
      refused.add(r.origin.name);
    }

  const plan: FwPlan = { rules: [], hosts, uncovered: [], allowsOmitted: [] };
  const allows: FwRule[] = [];
  const blocks: FwRule[] = [];
  const tail: FwRule[] = [];
  for (const family of FAMILIES) {
    // Rules refused above are left out, so the splits below still report their own problems in the same run.
    const rules = ir.rules.filter((r) => r.family === family && !refused.has(r.origin.name));
    const host = hosts[family];
    if (!host) {
      if (ir.default !== 'accept' || rules.some((r) => r.origin.action === 'deny')) {
        plan.uncovered.push(family);
        const other = Object.values(hosts)[0];
        diagnostics.push(
          warning('family-uncovered', `backend "${target}": --host gives no ${family} address, so the host's ${family} traffic is not filtered by these rules`, undefined, {
            hint: `if the host has ${family}, pass both addresses: --host ${other ? formatAddress(other.family, other.value) : 'ADDR'},<${family} address>`,
          }),
        );
      }
      continue;
    }
    const denies = splitDenies(rules.filter((r) => r.origin.action === 'deny'), target, diagnostics);
    const allowRules = rules.filter((r) => r.origin.action === 'allow');
    const everything = ir.default === 'accept' || allowRules.some((r) => regionIsEverything(regionFromIr(r, family)));
    if (everything) plan.allowsOmitted.push(family);
    else
      for (const r of allowRules) {
        const pieces = allowMinusDenies(r, denies, target, diagnostics);
        for (const region of pieces) allows.push(...regionRules(region, host, 'allow', r));
      }
    for (const p of denies) blocks.push(...regionRules(p.region, host, 'block', p.rule));
    if (!everything) tail.push({ key: `egress.default-${family}`, kind: 'block', description: `egress: block everything else from ${fmt(host)} (default ${ir.default})`, privateHost: host });
    if (!everything || denies.length)
      tail.push({ key: `egress.log-${family}`, kind: 'log', description: `egress: log what is blocked for ${fmt(host)}`, privateHost: host });
  }
  if (hasErrors(diagnostics)) return { diagnostics: diagnostics.filter((d) => d.severity === 'error') };
  // A rule's entries together (ipv4 before ipv6), in the IR's rule order.
  const order = new Map(ir.rules.map((r, i) => [r.origin.name, i] as const).reverse());
  const byRule = (a: FwRule, b: FwRule) => order.get(a.origin!.name)! - order.get(b.origin!.name)!;
  plan.rules = nameKeys([...allows.sort(byRule), ...blocks.sort(byRule), ...tail]);
  if (plan.rules.length > MAX_FW_RULES)
    return { diagnostics: [error('unsupported-selector', `the policy needs ${plan.rules.length} FW_RULE entries; backend "${target}" stops at ${MAX_FW_RULES}`, undefined, { hint: 'the splits come from allows minus denies and denies minus excepts; fewer overlaps mean fewer entries' })] };
  return { value: plan, diagnostics };
}

/** Each deny minus its excepts, as regions one FW_RULE can hold. */
function splitDenies(denies: IrRule[], target: Target, diagnostics: Diagnostic[]): Piece[] {
  const out: Piece[] = [];
  for (const r of denies) {
    const d = subtractRegions([regionFromIr(r, r.family)], r.except.map((e) => regionFromIr(e, r.family)));
    if ('inexpressible' in d) diagnostics.push(unsupported(r, 'except', target, restHint(d, 'this deny minus its except')));
    else out.push(...d.map((region) => ({ region, rule: r })));
  }
  return out;
}

function allowMinusDenies(r: IrRule, denies: Piece[], target: Target, diagnostics: Diagnostic[]): Region[] {
  let cur = [regionFromIr(r, r.family)];
  for (const p of denies) {
    const d = subtractRegions(cur, [p.region]);
    if ('inexpressible' in d) {
      const deny = p.rule;
      diagnostics.push(
        error('unsupported-selector', `rule "${deny.origin.name}": selector "${d.inexpressible}" cannot be expressed by backend "${target}"`, deny.keySpans[d.inexpressible === 'icmp' ? 'icmp' : 'ports'] ?? deny.origin.span, {
          hint: `it overlaps allow rule "${r.origin.name}", and the CE firewall lets a more specific allow override a block, so the allow is written minus this deny; ${restHint(d, 'that rest')}`,
          notes: [{ message: `allow rule "${r.origin.name}" is here`, span: r.origin.span }],
        }),
      );
      return [];
    }
    cur = d;
  }
  return cur;
}

function restHint(d: Inexpressible, what: string): string {
  return d.inexpressible === 'icmp' ? `${what} would be "every ICMP type but these", which FW_RULE cannot hold` : `${what} would be "every protocol but these", which FW_RULE cannot hold`;
}

/** One FW_RULE per public subnet × protocol/port range/ICMP type of a region. */
function regionRules(region: Region, host: FwAddress, kind: 'allow' | 'block', rule: IrRule): FwRule[] {
  const family = region.family;
  const dsts = region.dst ? region.dst.flatMap((x) => cidrs(family, x)) : [undefined];
  const l4s: Pick<FwRule, 'protocol' | 'ports' | 'icmpType'>[] = [];
  if (region.l4 === 'any') l4s.push({});
  else {
    for (const proto of ['tcp', 'udp', 'sctp'] as const)
      for (const [lo, hi] of region.l4.ports[proto] ?? []) l4s.push(lo === 0 && hi === 65535 ? { protocol: PROTO_NUMBER[proto] } : { protocol: PROTO_NUMBER[proto], ports: [lo, hi] });
    const icmp = family === 'ipv4' ? PROTO_NUMBER.icmp : PROTO_NUMBER.icmpv6;
    if (region.l4.icmp === 'any') l4s.push({ protocol: icmp });
    else for (const t of region.l4.icmp) l4s.push({ protocol: icmp, icmpType: t });
  }
  const out: FwRule[] = [];
  for (const d of dsts)
    for (const l of l4s) {
      const fr: FwRule = { key: '', origin: rule.origin, kind, description: rule.reason ?? `egress rule ${rule.origin.name}`, privateHost: host, ...l };
      if (d) fr.publicHost = d;
      out.push(fr);
    }
  return out;
}

/** An interval as the fewest CIDR blocks. */
export function cidrs(family: Family, x: Interval): { value: bigint; prefix: number }[] {
  const bits = bitsOf(family);
  const out: { value: bigint; prefix: number }[] = [];
  let lo = x.lo;
  while (lo <= x.hi) {
    let size = 0;
    while (size < bits) {
      const block = 1n << BigInt(size + 1);
      if ((lo & (block - 1n)) !== 0n || lo + block - 1n > x.hi) break;
      size++;
    }
    out.push({ value: lo, prefix: bits - size });
    lo += 1n << BigInt(size);
  }
  return out;
}

/** Keys: egress-<rule> when a rule needs one FW_RULE, egress-<rule>-<n> when it needs more. */
function nameKeys(rules: FwRule[]): FwRule[] {
  const count = new Map<string, number>();
  for (const r of rules) if (r.origin) count.set(r.origin.name, (count.get(r.origin.name) ?? 0) + 1);
  const n = new Map<string, number>();
  return rules.map((r) => {
    if (!r.origin) return r;
    const name = r.origin.name;
    const i = (n.get(name) ?? 0) + 1;
    n.set(name, i);
    return { ...r, key: count.get(name) === 1 ? `egress-${name}` : `egress-${name}-${i}` };
  });
}

function fmt(a: FwAddress): string {
  return formatAddress(a.family, a.value);
}

/** The artifact's opening comment, shared by both writers (generated text only: no policy strings). */
export function headerLines(plan: FwPlan, ir: Ir, target: Target): string[] {
  const hosts = FAMILIES.filter((f) => plan.hosts[f]).map((f) => fmt(plan.hosts[f]!));
  const lines = [
    `egress: Windows CE firewall rules (FW_RULE, fwapi.h) for the private host ${hosts.join(' and ')}`,
    `generated by "egress compile --target ${target}"; outbound traffic of that host only`,
    `mode ${ir.mode}, default ${ir.default}`,
  ];
  if (ir.denyVerdict === 'reject') lines.push('FW_RULE has no reject action: what the policy rejects is blocked instead (the client is not told)');
  for (const f of plan.allowsOmitted)
    lines.push(
      ir.default === 'accept'
        ? `${f}: default accept, so only the denies are written (as blocks); allow rules add nothing the default does not`
        : `${f}: an allow rule admits everything, so only the denies are written (as blocks) and no default block`,
    );
  for (const f of plan.uncovered)
    lines.push(`${f}: NOT COVERED: --host gave no ${f} address for this host, so its ${f} traffic is not filtered by these rules`, `  to cover it, pass both addresses: --host ${hosts[0] ?? 'ADDR'},<${f} address>`);
  return lines;
}
