/**
 * Warnings about a policy that is valid but probably not what the operator
 * meant. Runs on the IR, so coverage questions are answered on merged
 * intervals per family, exactly as the backends will see them.
 */
import { q, warning, type Diagnostic, error } from '../diag/diagnostic.js';
import type { Ir, IrL4, IrMatch, IrOwner, IrRule } from '../ir/types.js';
import { FAMILIES, intervalsCover, type Family } from '../policy/address.js';
import type { Policy } from '../policy/types.js';

export const LOG_PREFIX_FITS = 20;

/** `strict` (`check --strict`), like the policy's `require_reason: true`: a rule without a reason is an error. */
export function lintPolicy(p: Policy, ir: Ir, strict = false): Diagnostic[] {
  const out: Diagnostic[] = [];
  const hint = 'add "reason:" saying why this rule exists, so it can be reviewed later';
  for (const r of [...p.deny, ...p.allow])
    if (r.reason === undefined || r.reason.trim() === '')
      out.push(
        p.requireReason || strict
          ? error('reason-required', `rule ${q(r.ref.name)} has no reason, and ${p.requireReason ? 'this policy requires one (require_reason: true)' : '--strict requires one'}`, r.ref.span, { hint })
          : warning('missing-reason', `rule ${q(r.ref.name)} has no reason`, r.ref.span, { hint }),
      );

  const allows = ir.rules.filter((r) => r.origin.action === 'allow');
  // One rule covers another only if it also governs all the other's traffic: its `from` holds every source the other's does.
  const fromOf = new Map([...p.deny, ...p.allow].map((r) => [`${r.ref.action} ${r.ref.name}`, new Set(r.from.map((f) => f.name))]));
  const governsAll = (outer: string, inner: string) => [...(fromOf.get(inner) ?? [])].every((x) => fromOf.get(outer)?.has(x));
  const twinsOf = new Map<string, IrRule[]>();
  for (const r of ir.rules) {
    const k = `${r.origin.action} ${r.origin.name}`;
    twinsOf.set(k, [...(twinsOf.get(k) ?? []), r]);
  }
  // Only rules that contain one point of a rule can cover it: find those for every allow rule's first address at once.
  const allowTwins = [...twinsOf].filter(([k]) => k.startsWith('allow ')).sort(([a], [b]) => (a < b ? -1 : 1));
  // A rule that follows DNS can gain any address, so it has no probe: only rules without destinations can cover it.
  const probe = (t: IrRule) => (t.dst?.length && !hasDnsSet(t) ? t.dst[0]!.lo : undefined);
  const nearOf = new Map<IrRule, IrRule[]>();
  for (const family of FAMILIES) {
    const firsts = allowTwins.map(([, twins]) => twins[0]!).filter((t) => t.family === family && probe(t) !== undefined);
    const near = rulesAtPoints(ir.rules, family, firsts.map((t) => probe(t)!));
    firsts.forEach((t, i) => nearOf.set(t, near[i]!));
  }
  for (const [key, twins] of allowTwins) {
    const name = twins[0]!.origin.name;
    const first = twins[0]!;
    const near = nearOf.get(first) ?? ir.rules.filter((r) => r.family === first.family && !r.dst);
    const candidates = [...new Set(near.map((r) => `${r.origin.action} ${r.origin.name}`))].filter((k) => k !== key && governsAll(k, key)).sort();
    const dead = candidates
      .filter((k) => k.startsWith('deny '))
      .map((k) => twinsOf.get(k)!)
      .find((d) => d[0]!.except.length === 0 && coversRule(twins, d));
    if (dead) {
      out.push(
        warning('dead-rule', `allow rule ${q(name)} can never match: deny rule ${q(dead[0]!.origin.name)} covers all of it`, first.origin.span, {
          notes: [{ message: `deny rule ${q(dead[0]!.origin.name)} is here`, span: dead[0]!.origin.span }],
        }),
      );
      continue;
    }
    // Two rules that admit exactly the same flows: only the later name is reported.
    const by = candidates
      .filter((k) => k.startsWith('allow '))
      .map((k) => twinsOf.get(k)!)
      .find((o) => coversRule(twins, o) && !(o[0]!.origin.name > name && coversRule(o, twins) && governsAll(key, `allow ${o[0]!.origin.name}`)));
    if (by)
      out.push(
        warning('redundant-rule', `allow rule ${q(name)} is redundant: allow rule ${q(by[0]!.origin.name)} already admits everything it does`, first.origin.span, {
          notes: [{ message: `allow rule ${q(by[0]!.origin.name)} is here`, span: by[0]!.origin.span }],
        }),
      );
  }

  // Under dns.proxy the forwarder's guard owns port 53: lintDns says what that does to such rules.
  if (!ir.dns)
    for (const r of allows.filter((r, i) => opensDns(r) && allows.findIndex((x) => x.origin.name === r.origin.name && opensDns(x)) === i))
      out.push(
        warning('dns-anywhere', `rule ${q(r.origin.name)} allows DNS (port 53) to any destination: a data-exfiltration channel`, r.origin.span, {
          hint: 'restrict "to" to your resolvers',
        }),
      );

  for (const k of ['established', 'icmpv6_nd'] as const)
    if (!p.builtins[k])
      out.push(
        warning(
          'builtin-disabled',
          k === 'established'
            ? 'builtin "established" is off: replies to inbound connections (your SSH session) are denied unless a rule allows them'
            : 'builtin "icmpv6_nd" is off: IPv6 neighbour discovery is denied unless a rule allows it, and IPv6 stops working',
          p.spans.builtins[k],
        ),
      );

  if (p.default === 'accept' && p.deny.length === 0)
    out.push(warning('blocks-nothing', 'this policy blocks nothing: the default is accept and there are no deny rules', p.spans.default, { hint: 'use "default: reject" and allow what is needed' }));

  out.push(...lintDns(p, ir));

  if (p.log.prefix.length > LOG_PREFIX_FITS)
    out.push(
      warning('log-prefix-long', `log prefix ${q(p.log.prefix)} is ${p.log.prefix.length} characters: iptables' 29-character limit leaves no room for the verdict and rule tag`, p.spans.logPrefix, {
        hint: `keep it to ${LOG_PREFIX_FITS} characters`,
      }),
    );
  return out;
}

function coversRule(twins: IrRule[], other: IrRule[]): boolean {
  return twins.length > 0 && twins.every((t) => other.some((o) => o.family === t.family && covers(o, t)));
}

/** Whether every flow matching `inner` matches `outer` (whatever addresses DNS answers for either). */
export function covers(outer: IrMatch, inner: IrMatch): boolean {
  if (outer.dst && (!inner.dst || hasDnsSet(inner) || !intervalsCover(outer.dst, inner.dst))) return false;
  if (outer.l4 && (!inner.l4 || !l4Covers(outer.l4, inner.l4))) return false;
  if (!ownersCover(outer.users, inner.users) || !ownersCover(outer.groups, inner.groups)) return false;
  if (outer.via && (!inner.via || !inner.via.every((v) => outer.via!.includes(v)))) return false;
  return true;
}

function l4Covers(o: IrL4, i: IrL4): boolean {
  if (i.icmp === 'any' ? o.icmp !== 'any' : o.icmp !== 'any' && !i.icmp.every((t) => (o.icmp as number[]).includes(t))) return false;
  return i.ports.every((ip) => {
    const op = o.ports.find((p) => p.proto === ip.proto);
    return !!op && ip.ranges.every(([lo, hi]) => op.ranges.some(([a, b]) => a <= lo && hi <= b));
  });
}

function ownersCover(o: IrOwner[] | undefined, i: IrOwner[] | undefined): boolean {
  if (!o) return true;
  if (!i) return false;
  const key = (x: IrOwner) => (x.id !== undefined ? `#${x.id}` : `@${x.name}`);
  const keys = new Set(o.map(key));
  return i.every((x) => keys.has(key(x)));
}

function hasDnsSet(m: IrMatch): boolean {
  return m.sets?.some((s) => s.kind === 'dns') ?? false;
}

/** Whether `l4` names a tcp or udp port range containing `port` (a rule without ports is not counted: it names no port). */
function namesPort(l4: IrL4 | undefined, port: number): boolean {
  return !!l4 && l4.ports.some((x) => (x.proto === 'tcp' || x.proto === 'udp') && x.ranges.some(([lo, hi]) => lo <= port && port <= hi));
}

const FULL: Record<'ipv4' | 'ipv6', bigint> = { ipv4: (1n << 32n) - 1n, ipv6: (1n << 128n) - 1n };

/** Warnings that only mean something with `dns.proxy` (or with `dns:` settings but no proxy). */
function lintDns(p: Policy, ir: Ir): Diagnostic[] {
  const out: Diagnostic[] = [];
  const once = new Set<string>();
  const first = (code: string, r: IrRule) => {
    const k = `${code} ${r.origin.name}`;
    if (once.has(k)) return false;
    once.add(k);
    return true;
  };
  if (!ir.dns) {
    const d = p.dns;
    if (d.spans.key && (d.upstream || d.spans.grace || d.spans.minLifetime))
      out.push(
        warning('dns-settings-unused', '"dns" settings have no effect without "proxy: true"', d.spans.key, {
          hint: 'add "proxy: true" to answer DNS through egress\'s forwarder, or delete the settings',
        }),
      );
    return out;
  }
  const hasNames = ir.dns.refused.length > 0 || ir.rules.some(hasDnsSet);
  for (const r of ir.rules.filter((r) => r.origin.action === 'allow')) {
    const anywhere = !r.dst || (r.dst.length === 1 && r.dst[0]!.lo === 0n && r.dst[0]!.hi === FULL[r.family]);
    const doh = ['tcp', 'udp'].filter((proto) => !r.l4 || r.l4.ports.some((x) => x.proto === proto && x.ranges.some(([lo, hi]) => lo <= 443 && 443 <= hi)));
    if (hasNames && anywhere && doh.length && first('hostname-rules-advisory', r))
      out.push(
        warning(
          'hostname-rules-advisory',
          `rule ${q(r.origin.name)} allows ${doh.map((x) => `${x}/443`).join(' and ')} to any address: programs can look names up over DNS over HTTPS there, so the policy's name rules only steer programs that use DNS`,
          r.keySpans.ports ?? r.origin.span,
          { hint: 'give the rule destinations (names or addresses), so DNS-over-HTTPS servers are not reachable' },
        ),
      );
    for (const [port, what] of [
      [53, 'port 53 (DNS): with dns.proxy every query is answered through the forwarder, and only the forwarder may send DNS'],
      [853, 'port 853 (DNS over TLS), which with dns.proxy is refused to every program but the forwarder'],
    ] as const)
      if (namesPort(r.l4, port) && first(`dns-rule-overridden ${port}`, r))
        out.push(
          warning('dns-rule-overridden', `rule ${q(r.origin.name)} allows ${what}, so the rule no longer admits it`, r.keySpans.ports ?? r.origin.span, {
            hint: port === 53 ? 'take port 53 out of the rule; to have the forwarder ask these servers, list them in "dns.upstream"' : 'take port 853 out of the rule',
          }),
        );
  }
  const refusedBy = new Map<string, string[]>();
  for (const x of ir.dns.refused) refusedBy.set(x.origin.name, [...(refusedBy.get(x.origin.name) ?? []), x.pattern]);
  for (const r of p.deny) {
    const names = refusedBy.get(r.ref.name);
    if (!names) continue;
    const others: string[] = (['ports', 'icmp', 'user', 'group', 'via', 'family'] as const).filter((k) => r.keySpans[k]);
    if (r.except.length) others.push('except');
    const ignored = others.length ? `; the rule's ${others.map((k) => `"${k}"`).join(', ')} cannot narrow a refusal, so every program is refused them` : '';
    out.push(
      warning(
        'deny-name-refused',
        `deny rule ${q(r.ref.name)}: its names (${names.map((n) => q(n)).join(', ')}) are answered REFUSED by the DNS forwarder, not denied by address${ignored}`,
        r.keySpans.to ?? r.ref.span,
        { hint: 'addresses behind a name are often shared with other names (CDNs), so egress does not deny them; to deny addresses, list the addresses' },
      ),
    );
  }
  return out;
}

function opensDns(r: IrRule): boolean {
  if (r.dst) return false;
  if (!r.l4) return false;
  return r.l4.ports.some((p) => (p.proto === 'udp' || p.proto === 'tcp') && p.ranges.some(([lo, hi]) => lo <= 53 && 53 <= hi));
}

/**
 * For each point, the rules of `family` whose destinations contain it, plus every rule of that family without
 * destinations, in the order of `rules`. Lint asks this for one point per allow rule: sorting those few points and
 * walking each rule's intervals over them costs far less than indexing every destination (100,000 of them in one
 * set file) the way the evaluator must.
 */
export function rulesAtPoints(rules: readonly IrRule[], family: Family, points: readonly bigint[]): IrRule[][] {
  const order = points.map((_, i) => i).sort((a, b) => (points[a]! < points[b]! ? -1 : points[a]! > points[b]! ? 1 : 0));
  const sorted = order.map((i) => points[i]!);
  const out = points.map((): IrRule[] => []);
  for (const r of rules) {
    if (r.family !== family) continue;
    if (!r.dst) {
      for (const o of out) o.push(r);
      continue;
    }
    for (const x of r.dst) {
      // The first point ≥ x.lo; a rule whose intervals overlap adds itself to a point once.
      let lo = 0;
      let hi = sorted.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (sorted[mid]! < x.lo) lo = mid + 1;
        else hi = mid;
      }
      for (let k = lo; k < sorted.length && sorted[k]! <= x.hi; k++) {
        const o = out[order[k]!]!;
        if (o[o.length - 1] !== r) o.push(r);
      }
    }
  }
  return out;
}
