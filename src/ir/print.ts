/** A stable, sorted, one-construct-per-line text dump of the IR (`--target ir`, golden `ir.txt`). */
import { formatInterval } from '../policy/address.js';
import { icmpTypeName } from '../policy/protocols.js';
import { formatDuration, formatEndpoint } from '../policy/dns-name.js';
import type { Ir, IrDns, IrForward, IrMatch, IrOwner, IrRule } from './types.js';

export function printIr(ir: Ir): string {
  const out: string[] = [];
  out.push(`mode ${ir.mode}`);
  out.push(`default ${ir.default}`);
  out.push(`deny-verdict ${ir.denyVerdict}`);
  const rate = ir.log.rate ? ` rate ${ir.log.rate.count}/${ir.log.rate.unit}` : '';
  out.push(`log prefix ${JSON.stringify(ir.log.prefix)}${rate} uid ${ir.log.uid ? 'on' : 'off'}`);
  out.push(`builtins loopback ${onOff(ir.builtins.loopback)} established ${onOff(ir.builtins.established)} icmpv6_nd ${onOff(ir.builtins.icmpv6_nd)}`);
  if (ir.dns) out.push(...printDns(ir.dns));
  for (const h of ir.hosts) out.push(`host ${h.name} ${h.status} ipv4 {${h.ipv4.join(', ')}} ipv6 {${h.ipv6.join(', ')}}`);
  for (const r of ir.rules) out.push(...printRule(r));
  if (ir.forward) out.push(...printForward(ir.forward));
  return out.join('\n') + '\n';
}

function printForward(f: IrForward): string[] {
  const out = [`forward default ${f.default} deny-verdict ${f.denyVerdict} unlisted ${f.unlisted}`];
  for (const s of f.sources) {
    const nets = s.networks ? ` networks {${(['ipv4', 'ipv6'] as const).flatMap((fam) => s.networks![fam].map((x) => formatInterval(fam, x))).join(', ')}}` : ' networks any';
    out.push(`source ${s.name} interfaces {${s.interfaces.join(', ') || 'any'}}${nets} families {${s.families.join(', ')}}`);
  }
  for (const r of f.rules) out.push(...printRule(r).map((l, i) => (i === 0 ? `forward ${l} from {${(r.from ?? []).join(', ')}}` : l)));
  return out;
}

function printDns(d: IrDns): string[] {
  const upstream = d.upstream.length ? `{${d.upstream.map(formatEndpoint).join(', ')}}` : 'system';
  const head = `dns proxy upstream ${upstream} grace ${formatDuration(d.graceSec)} min_lifetime ${formatDuration(d.minLifetimeSec)}`;
  return [
    `${head} listen {${d.listen.map(formatEndpoint).join(', ')}} forwarder group ${owners([d.forwarder])}`,
    ...d.refused.map((r) => `dns refused ${r.pattern} rule ${r.origin.name}`),
  ];
}

function onOff(b: boolean): string {
  return b ? 'on' : 'off';
}

function printRule(r: IrRule): string[] {
  const head = `rule ${r.origin.action} ${r.origin.name} ${r.family}${printMatch(r, r)}${r.untilSec !== undefined ? ` until ${new Date(r.untilSec * 1000).toISOString()}` : ''}`;
  const lines = [head];
  for (const e of r.except) lines.push(`  except${printMatch(e, r)}`);
  for (const [i, s] of r.sources.entries())
    lines.push(`  source ${i} ${JSON.stringify(s.text)}${s.host ? ` host ${s.host}` : ''}${s.sets ? ` via $${s.sets.join(' $')}` : ''}`);
  return lines;
}

function owners(os: IrOwner[]): string {
  return os.map((o) => (o.name !== undefined && o.id !== undefined ? `${o.name}(${o.id})` : o.name ?? String(o.id))).join(', ');
}

function printMatch(m: IrMatch, r: IrRule): string {
  const parts: string[] = [];
  if (m.dst) parts.push(`dst {${m.dst.map((x) => `${formatInterval(r.family, x)}[${x.src.join(',')}]`).join(', ')}}`);
  else parts.push('dst any');
  const dns = m.sets?.find((s) => s.kind === 'dns');
  if (dns) parts.push(`dns {${(dns.patterns ?? []).join(', ')}}`);
  if (m.l4) {
    const l4 = m.l4.ports.map((p) => `${p.proto} {${p.ranges.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)).join(', ')}}`);
    const icmp = m.l4.icmp === 'any' ? ['icmp any'] : m.l4.icmp.length ? [`icmp {${m.l4.icmp.map((t) => `${icmpTypeName(r.family, t)}(${t})`).join(', ')}}`] : [];
    parts.push(`l4 ${[...l4, ...icmp].join(' ')}`);
  } else parts.push('l4 any');
  if (m.users) parts.push(`user {${owners(m.users)}}`);
  if (m.groups) parts.push(`group {${owners(m.groups)}}`);
  if (m.via) parts.push(`via {${m.via.join(', ')}}`);
  return ' ' + parts.join(' ');
}
