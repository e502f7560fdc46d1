/**
 * Warnings about a policy that is valid but probably not what the operator
 * meant. Runs on the IR, so coverage questions are answered on merged
 * intervals per family, exactly as the backends will see them.
 */
import { q, warning, type Diagnostic } from '../diag/diagnostic.js';
import type { Ir, IrL4, IrMatch, IrOwner, IrRule } from '../ir/types.js';
import { buildIndex } from '../sim/indexed.js';
import { intervalsCover } from '../policy/address.js';
import type { Policy } from '../policy/types.js';

export const LOG_PREFIX_FITS = 20;

export function lintPolicy(p: Policy, ir: Ir): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const r of [...p.deny, ...p.allow])
    if (r.reason === undefined || r.reason.trim() === '')
      out.push(warning('missing-reason', `rule ${q(r.ref.name)} has no reason`, r.ref.span, { hint: 'add "reason:" saying why this rule exists, so it can be reviewed later' }));

  const allows = ir.rules.filter((r) => r.origin.action === 'allow');
  const twinsOf = new Map<string, IrRule[]>();
  for (const r of ir.rules) {
    const k = `${r.origin.action} ${r.origin.name}`;
    twinsOf.set(k, [...(twinsOf.get(k) ?? []), r]);
  }
  // Only rules that contain one point of a rule can cover it: ask the index for those.
  const index = buildIndex(ir);
  for (const [key, twins] of [...twinsOf].filter(([k]) => k.startsWith('allow ')).sort(([a], [b]) => (a < b ? -1 : 1))) {
    const name = twins[0]!.origin.name;
    const first = twins[0]!;
    const near = first.dst ? index.rulesAt(first.family, first.dst[0]!.lo) : ir.rules.filter((r) => r.family === first.family && !r.dst);
    const candidates = [...new Set(near.map((r) => `${r.origin.action} ${r.origin.name}`))].filter((k) => k !== key).sort();
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
      .find((o) => coversRule(twins, o) && !(o[0]!.origin.name > name && coversRule(o, twins)));
    if (by)
      out.push(
        warning('redundant-rule', `allow rule ${q(name)} is redundant: allow rule ${q(by[0]!.origin.name)} already admits everything it does`, first.origin.span, {
          notes: [{ message: `allow rule ${q(by[0]!.origin.name)} is here`, span: by[0]!.origin.span }],
        }),
      );
  }

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

/** Whether every flow matching `inner` matches `outer`. */
export function covers(outer: IrMatch, inner: IrMatch): boolean {
  if (outer.dst && (!inner.dst || !intervalsCover(outer.dst, inner.dst))) return false;
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

function opensDns(r: IrRule): boolean {
  if (r.dst) return false;
  if (!r.l4) return false;
  return r.l4.ports.some((p) => (p.proto === 'udp' || p.proto === 'tcp') && p.ranges.some(([lo, hi]) => lo <= 53 && 53 <= hi));
}
