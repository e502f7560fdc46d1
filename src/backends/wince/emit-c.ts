/**
 * Backend `wince-c`: the same FW_RULE list as `wince`, as one C function that
 * fills each FW_RULE and calls FirewallCreateRule(&rule, TRUE) — the
 * documentation example's code, generated. Use it where rules are created by
 * a program rather than shipped in the image's registry. What it cannot
 * express is exactly what `wince` cannot (emit.ts; WINCE_CAPABILITIES).
 *
 * Addresses are copied in as network-order bytes rather than parsed with
 * WSAStringToAddress at run time, so the program needs no winsock start-up
 * and cannot fail on a typo. Policy text reaches the C source only inside
 * L"…" literals (escape rules at cWide), never inside comments.
 */
import { formatAddress } from '../../policy/address.js';
import { icmpTypeName } from '../../policy/protocols.js';
import type { Ir } from '../../ir/types.js';
import { ArtifactWriter, type Backend, type EmitOptions } from '../types.js';
import { addressBytes, bitNames, FWF, fwFlags, fwMask, FWM, maskBytes, PROTOCOL_NAMES, type FwAddress, type FwRule } from './fw-rule.js';
import { emitFwRules, headerLines, WINCE_CAPABILITIES } from './fw-rules.js';

export const FUNCTION_NAME = 'EgressCreateFirewallRules';

export const winceCBackend: Backend = {
  name: 'wince-c',
  capabilities: WINCE_CAPABILITIES,
  emit(ir: Ir, opts?: EmitOptions) {
    const plan = emitFwRules(ir, opts, 'wince-c');
    if (!plan.value) return { diagnostics: plan.diagnostics };
    const w = new ArtifactWriter();
    w.line('/*');
    for (const l of headerLines(plan.value, ir, 'wince-c')) w.line(` * ${l}`);
    w.line(' */');
    w.line('#include <windows.h>');
    w.line('#include <string.h>');
    w.line('#include <fwapi.h>');
    w.line('');
    w.line(`/* Creates every rule below as a persistent firewall rule; returns ERROR_SUCCESS or the first error. */`);
    w.line(`DWORD ${FUNCTION_NAME}(void)`);
    w.line('{');
    w.line('    FW_RULE rule;');
    w.line('    DWORD err;');
    for (const r of plan.value.rules) {
      w.line('');
      for (const l of cRule(r)) w.line(`    ${l}`, r.origin);
    }
    w.line('');
    w.line('    return ERROR_SUCCESS;');
    w.line('}');
    return { value: w.artifact(), diagnostics: plan.diagnostics };
  },
};

function cRule(r: FwRule): string[] {
  const fam = r.privateHost.family;
  const af = fam === 'ipv4' ? 'AF_INET' : 'AF_INET6';
  const out = [
    `/* ${r.key}: ${r.origin ? `${r.origin.action} rule "${r.origin.name}"` : r.kind === 'log' ? 'logging' : 'the default'} */`,
    'memset(&rule, 0, sizeof(rule));',
    'rule.dwSize = sizeof(FW_RULE);',
    `rule.dwFlags = ${bitNames(fwFlags(r), FWF, 'FWF_')};`,
    `rule.dwMask = ${bitNames(fwMask(r), FWM, 'FWM_')};`,
    `rule.wszDescription = ${cWide(r.description)};`,
    `rule.PrivateHost.Family = ${af};`,
    ...copyAddress('rule.PrivateHost', r.privateHost),
  ];
  if (r.publicHost) {
    out.push(`rule.PublicHost.Family = ${af};`, ...copyAddress('rule.PublicHost', { family: fam, value: r.publicHost.value }));
    const mask = fwMask(r);
    if (mask & FWM.PUBLIC_HOST_MASK) out.push(...copyBytes('rule.PublicHostMask', maskBytes(r.publicHost.prefix), `/${r.publicHost.prefix}`));
    if (mask & FWM.PUBLIC_HOST_PREFIX) out.push(`rule.PublicHostPrefixLength = ${r.publicHost.prefix};`);
  }
  if (r.protocol !== undefined) out.push(`rule.Protocol = ${r.protocol}; /* ${PROTOCOL_NAMES[r.protocol] ?? 'protocol'} */`);
  if (r.ports) out.push(`rule.PortMin = ${r.ports[0]};`, `rule.PortMax = ${r.ports[1]};`);
  if (r.icmpType !== undefined) out.push(`rule.Type = ${r.icmpType}; /* ${icmpTypeName(fam, r.icmpType)} */`);
  if (r.kind === 'log') out.push('rule.Action = FWA_BLOCK;');
  out.push('err = FirewallCreateRule(&rule, TRUE);', 'if (err != ERROR_SUCCESS)', '    return err;');
  return out;
}

function copyAddress(field: string, a: FwAddress): string[] {
  return copyBytes(`${field}.${a.family === 'ipv4' ? 'AddressIPv4' : 'AddressIPv6'}`, addressBytes(a), formatAddress(a.family, a.value));
}

function copyBytes(field: string, bytes: number[], comment: string): string[] {
  const list = bytes.map((b) => `0x${b.toString(16).toUpperCase().padStart(2, '0')}`).join(', ');
  return ['{', `    static const UCHAR a[${bytes.length}] = { ${list} }; /* ${comment} */`, `    memcpy(&${field}, a, sizeof(a));`, '}'];
}

/**
 * A wide string literal holding exactly `s` (UTF-16 code units, as CE's
 * wchar_t is). Printable ASCII stays, except `\`, `"` and `?` (trigraphs);
 * anything else is a \x escape, and the literal is split right after it
 * (L"it\x2019" L"s") so a following hex digit cannot extend the escape.
 * NUL was refused before (checkRule in fw-rules.ts).
 */
export function cWide(s: string): string {
  let out = 'L"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x5c || c === 0x22 || c === 0x3f) out += '\\' + s[i];
    else if (c >= 0x20 && c <= 0x7e) out += s[i];
    else out += `\\x${c.toString(16).toUpperCase().padStart(4, '0')}" L"`;
  }
  return (out + '"').replace(/ L""$/, '');
}
