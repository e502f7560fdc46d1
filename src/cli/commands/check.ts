import { visible } from '../../diag/diagnostic.js';
import { formatEndpoint } from '../../policy/dns-name.js';
import type { UpstreamChoice } from '../../resolve/dns.js';
import { IPTABLES_LINEAR_WARN } from '../../backends/types.js';
import type { Io } from '../io.js';
import { writeResult } from '../envelope.js';
import { diagnosticsJson, failed, load, type PolicyFlags } from '../shared.js';

export async function checkCommand(io: Io, file: string, flags: PolicyFlags & { strict?: boolean }): Promise<number> {
  const l = await load(io, file, flags, flags.strict ? { strict: true } : {});
  const errors = l.diagnostics.filter((d) => d.severity === 'error').length;
  const warnings = l.diagnostics.length - errors;
  const ok = !failed(l);
  const rules = { allow: l.policy?.allow.length ?? 0, deny: l.policy?.deny.length ?? 0 };
  const up = l.dnsUpstream;
  const dns = up ? { proxy: true as const, upstream: up.servers.map(formatEndpoint), from: up.from } : undefined;
  const destinations = l.ir?.rules.reduce((n, r) => n + (r.dst?.length ?? 0), 0) ?? 0;
  if (flags.json) writeResult(io, 'check', { ok, result: { file, errors, warnings, rules, destinations, ...(dns ? { dns } : {}) }, diagnostics: diagnosticsJson(l) });
  else if (ok) {
    io.stdout(`${visible(file)}: ok (${rules.allow} allow, ${rules.deny} deny rule${rules.deny === 1 ? '' : 's'}; ${warnings} warning${warnings === 1 ? '' : 's'})\n`);
    if (up) io.stdout(`${visible(file)}: dns: the forwarder will ask ${upstreamText(up)}\n`);
    if (destinations >= IPTABLES_LINEAR_WARN) io.stdout(`${visible(file)}: ${linearNote(destinations)}\n`);
  }
  else io.stderr(`${visible(file)}: ${errors} error${errors === 1 ? '' : 's'}, ${warnings} warning${warnings === 1 ? '' : 's'}; nothing was changed\n`);
  return ok ? 0 : 1;
}

/**
 * What many destinations cost on each backend (issue 13: "say plainly … in
 * check what it costs"): nft looks them up in a set, iptables tries them in
 * turn. `compile --target iptables` (and plan and apply on iptables) warn
 * with the exact rule count (iptables-linear).
 */
function linearNote(destinations: number): string {
  return `${destinations.toLocaleString('en-US')} destination addresses and ranges: on nft, one set lookup per packet whatever the number; on iptables (no sets), one rule each, tried in turn for every new connection (measured: 0.45× of no firewall's new connections at 1,000, 0.08× at 10,000; BENCHMARKS.md "Kernel")`;
}

/** Which upstream servers the forwarder will ask, and why those (SPEC §5: dns.upstream, else resolv.conf, else systemd-resolved). */
function upstreamText(up: UpstreamChoice): string {
  const list = up.servers.map(formatEndpoint).join(', ');
  switch (up.from) {
    case 'dns.upstream':
      return `${list} (dns.upstream)`;
    case 'systemd-resolved':
      return `${list} (systemd-resolved's upstream servers; /etc/resolv.conf names only loopback ones)`;
    case 'none':
      return 'no server (none found)';
    case 'unknown':
      return "the servers of /etc/resolv.conf (or systemd-resolved's), read when it starts";
    default:
      return `${list} (from ${up.from})`;
  }
}
