/**
 * Where the forwarder sends queries when the policy names no `dns.upstream`:
 * the non-loopback `nameserver`s of /etc/resolv.conf; when there are none
 * (the usual systemd-resolved set-up, where it names only the 127.0.0.53
 * stub), the servers systemd-resolved itself uses, which it lists in
 * /run/systemd/resolve/resolv.conf. A loopback address is never an upstream:
 * the kernel redirects local DNS to the forwarder, so a loopback stub would
 * send the query straight back.
 *
 * Pure: the caller reads the files (and passes undefined for a missing one).
 */
import ipaddr from 'ipaddr.js';
import type { Endpoint } from './types.js';

export const RESOLV_CONF = '/etc/resolv.conf';
export const RESOLVED_UPSTREAM_CONF = '/run/systemd/resolve/resolv.conf';

/** The usable nameservers of one resolv.conf text, in order, without duplicates. */
export function nameservers(text: string): Endpoint[] {
  const out: Endpoint[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const m = /^nameserver\s+(\S+)$/.exec(line);
    if (!m) continue;
    // glibc takes "addr%zone" for link-local IPv6; a zone makes no sense for a forwarder talking from its own sockets.
    const addr = m[1]!;
    let parsed: ipaddr.IPv4 | ipaddr.IPv6;
    try {
      if (!ipaddr.isValid(addr)) continue;
      parsed = ipaddr.parse(addr);
    } catch {
      continue;
    }
    if (parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) parsed = (parsed as ipaddr.IPv6).toIPv4Address();
    const range = parsed.range();
    if (range === 'loopback' || range === 'unspecified') continue;
    const address = parsed.toString();
    if (!out.some((e) => e.address === address)) out.push({ address, port: 53 });
  }
  return out;
}

/**
 * The upstream servers from the system's configuration: `resolvConfText`
 * (/etc/resolv.conf) first; when it has no usable nameserver,
 * `resolvedText` (systemd-resolved's /run/systemd/resolve/resolv.conf).
 * Empty when neither names one: the caller must then say so (the forwarder
 * cannot answer anything).
 */
export function upstreamFromSystem(resolvConfText: string, resolvedText?: string): Endpoint[] {
  const first = nameservers(resolvConfText);
  if (first.length || resolvedText === undefined) return first;
  return nameservers(resolvedText);
}
