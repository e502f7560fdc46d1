/**
 * Backend `wince`: the Windows CE gateway firewall, as registry entries under
 * HKEY_LOCAL_MACHINE\COMM\Firewall\Rules\<key>, one FW_RULE per key, in the
 * layout and value encodings of the documentation's example ("Restricting
 * Outbound Traffic to Selected TCP Ports"): `dword:` hex without padding,
 * FW_IP_ADDRESS as `hex:` bytes, a `;` comment on every value.
 *
 * Cannot express (each an `unsupported-selector` error naming rule, selector
 * and backend; reasons in WINCE_CAPABILITIES, details in
 * docs/backends-windows.md):
 *   user, group     the gateway sees packets, not the account that sent them
 *   via             FW_RULE has no interface field
 *   to: hostnames   registry rules hold fixed addresses, no refresh in place
 *   dns.proxy       nothing a DNS forwarder could fill (the setting and each
 *                   rule with names that follow DNS)
 *   ports: sctp/N   FWM_PORT applies to TCP and UDP only (bare sctp is fine)
 *   except          only when "deny minus except" has no finite FW_RULE form
 *                   (every protocol / ICMP type but some), or uses the above
 *   a deny overlapping an allow, when "allow minus deny" has no finite form:
 *                   CE lets a specific allow override a block, never the
 *                   reverse, so overlaps are cut out of the allow or refused
 *   mode: audit     FW_RULE cannot log-and-pass what a block would drop
 *   builtins off    loopback, established and neighbour discovery never
 *                   meet the gateway's rules, so they cannot be turned off
 * Not errors, but stated in the output's header: reject is delivered as a
 * block (FW_RULE has no reject); a family --host gave no address for is not
 * covered (pass --host v4,v6); log rate limits and counters do not exist.
 */
import { formatAddress } from '../../policy/address.js';
import { icmpTypeName } from '../../policy/protocols.js';
import type { Ir } from '../../ir/types.js';
import { ArtifactWriter, type Backend, type EmitOptions } from '../types.js';
import { AF, bitNames, FWA, FWF, fwAddressBytes, fwFlags, fwMask, FWM, maskBytes, PROTOCOL_NAMES, type FwRule } from './fw-rule.js';
import { emitFwRules, headerLines, WINCE_CAPABILITIES } from './fw-rules.js';

const ROOT = 'HKEY_LOCAL_MACHINE\\COMM\\Firewall\\Rules';
const COMMENT_COL = 44;

export const winceBackend: Backend = {
  name: 'wince',
  capabilities: WINCE_CAPABILITIES,
  emit(ir: Ir, opts?: EmitOptions) {
    const plan = emitFwRules(ir, opts, 'wince');
    if (!plan.value) return { diagnostics: plan.diagnostics };
    const w = new ArtifactWriter();
    for (const l of headerLines(plan.value, ir, 'wince')) w.line(`; ${l}`);
    w.line('; Mask, Flags, PrivateHost, Protocol and Port are the documented registry values; the others carry');
    w.line('; the FW_RULE field of the same name (see docs/backends-windows.md).');
    for (const r of plan.value.rules) {
      const values = regValues(r);
      w.line('');
      w.line(`; ${r.key}: ${r.origin ? `${r.origin.action} rule "${r.origin.name}"` : r.kind === 'log' ? 'logging' : 'the default'}`, r.origin);
      w.line(`[${ROOT}\\${r.key}]`, r.origin);
      for (const [v, c] of values) w.line(`    ${v}`.padEnd(COMMENT_COL - 1) + ` ; ${c}`, r.origin);
    }
    return { value: w.artifact(), diagnostics: plan.diagnostics };
  },
};

/** The rule's values as [value, comment] pairs. */
function regValues(r: FwRule): [string, string][] {
  const mask = fwMask(r);
  const flags = fwFlags(r);
  const fam = r.privateHost.family;
  const out: [string, string][] = [
    [`"Mask"=${dword(mask)}`, bitNames(mask, FWM, 'FWM_')],
    [`"Flags"=${dword(flags)}`, bitNames(flags, FWF, 'FWF_')],
    [`"PrivateHost"=${hex(fwAddressBytes(r.privateHost))}`, `${formatAddress(fam, r.privateHost.value)} (AF_${fam === 'ipv4' ? 'INET' : 'INET6'} = ${AF[fam]})`],
  ];
  if (r.publicHost) {
    const p = r.publicHost;
    out.push([`"PublicHost"=${hex(fwAddressBytes({ family: fam, value: p.value }))}`, formatAddress(fam, p.value)]);
    if (mask & FWM.PUBLIC_HOST_MASK) out.push([`"PublicHostMask"=${hex(maskBytes(p.prefix))}`, `/${p.prefix}`]);
    if (mask & FWM.PUBLIC_HOST_PREFIX) out.push([`"PublicHostPrefixLength"=${dword(p.prefix)}`, `/${p.prefix}`]);
  }
  if (r.protocol !== undefined) out.push([`"Protocol"=${dword(r.protocol)}`, PROTOCOL_NAMES[r.protocol] ?? `protocol ${r.protocol}`]);
  if (r.ports) {
    const [lo, hi] = r.ports;
    if (lo === hi) out.push([`"Port"=${dword(lo)}`, String(lo)]);
    else out.push([`"PortMin"=${dword(lo)}`, String(lo)], [`"PortMax"=${dword(hi)}`, String(hi)]);
  }
  if (r.icmpType !== undefined) out.push([`"Type"=${dword(r.icmpType)}`, `${fam === 'ipv4' ? 'ICMP' : 'ICMPv6'} ${icmpTypeName(fam, r.icmpType)}`]);
  if (r.kind === 'log') out.push([`"Action"=${dword(FWA.BLOCK)}`, 'FWA_BLOCK: log blocked packets']);
  const desc = regString(r.description);
  out.push([`"Description"=${desc}`, desc.startsWith('hex') ? 'description (REG_SZ as UTF-16LE bytes)' : 'description']);
  return out;
}

function dword(n: number): string {
  return `dword:${n.toString(16).toUpperCase()}`;
}

function hex(bytes: number[]): string {
  return `hex:${bytes.map((b) => b.toString(16).toUpperCase().padStart(2, '0')).join(',')}`;
}

/**
 * A REG_SZ value: "…" with \ and " escaped when the text is printable ASCII,
 * else hex(1): UTF-16LE bytes (the registry's own encoding, so no code page
 * can mangle it). NUL was refused before (see checkRule in fw-rules.ts).
 */
export function regString(s: string): string {
  if (/^[\x20-\x7e]*$/.test(s)) return `"${s.replace(/[\\"]/g, (c) => '\\' + c)}"`;
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    bytes.push(c & 0xff, c >> 8);
  }
  return `hex(1):${[...bytes, 0, 0].map((b) => b.toString(16).padStart(2, '0')).join(',')}`;
}
