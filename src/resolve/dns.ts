/**
 * What `dns.proxy` needs from this host: the forwarder's identity and listen
 * addresses (constants the ruleset and the forwarder must agree on), and its
 * upstream servers when the policy names none — read through the Resolver
 * seam, never from the file system directly.
 */
import { parseUpstream, type Endpoint } from '../policy/dns-name.js';
import type { PolicyDns } from '../policy/types.js';
import type { Resolver } from './resolver.js';

/**
 * The group the forwarder runs as (uid 0, primary gid this group). The
 * ruleset tells the forwarder's own DNS traffic apart by `meta skuid 0 meta
 * skgid <gid>`: root keeps the capabilities the forwarder needs (bind port
 * 153, write nft sets) without ambient-capability juggling, and only root can
 * take a gid it is not a member of — so no other program can pass for it.
 */
export const DNS_FORWARDER_GROUP = 'egress-dns';

/**
 * Where the forwarder listens: the target of the kernel redirect. A
 * dedicated loopback address for IPv4 (127/8 is local without any setup) and
 * ::1 for IPv6 (the only IPv6 loopback address), both on port 153: privileged
 * (no unprivileged program can squat it before the forwarder binds) and
 * unused, so a local resolver bound to port 53 on the wildcard address or on
 * ::1 (dnsmasq, unbound, bind) never conflicts with it.
 */
export const DNS_LISTEN: readonly { address: string; port: number }[] = [
  { address: '127.0.0.153', port: 153 },
  { address: '::1', port: 153 },
];

export const RESOLV_CONF = '/etc/resolv.conf';
/** systemd-resolved's list of the upstream servers it uses (resolv.conf there points at its stub). */
export const RESOLVED_CONF = '/run/systemd/resolve/resolv.conf';

export interface UpstreamChoice {
  /** Where the list came from: the policy, resolv.conf, systemd-resolved; none found; or unknown (the resolver cannot read them). */
  from: 'dns.upstream' | typeof RESOLV_CONF | 'systemd-resolved' | 'none' | 'unknown';
  servers: Endpoint[];
}

/** The usable `nameserver` lines of a resolv.conf: unicast, non-loopback addresses (a stub such as 127.0.0.53 is skipped), port 53. */
export function parseResolvConf(text: string): Endpoint[] {
  const out: Endpoint[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (!m) continue;
    const u = parseUpstream(m[1]!);
    if (u.kind === 'ok' && u.port === 53 && !out.some((x) => x.address === u.address)) out.push({ family: u.family, address: u.address, port: u.port });
  }
  return out;
}

/** The servers the forwarder will ask, and where that list came from. */
export function chooseUpstream(dns: Pick<PolicyDns, 'upstream'>, files: { system?: string; resolved?: string } | undefined): UpstreamChoice {
  if (dns.upstream) return { from: 'dns.upstream', servers: dns.upstream.map((u) => ({ family: u.family, address: u.address, port: u.port })) };
  if (!files) return { from: 'unknown', servers: [] };
  const sys = parseResolvConf(files.system ?? '');
  if (sys.length) return { from: RESOLV_CONF, servers: sys };
  const resolved = parseResolvConf(files.resolved ?? '');
  if (resolved.length) return { from: 'systemd-resolved', servers: resolved };
  return { from: 'none', servers: [] };
}

/** `chooseUpstream` with the system's files read through the resolver (when it can read them). */
export async function dnsUpstream(dns: Pick<PolicyDns, 'upstream'>, r: Resolver): Promise<UpstreamChoice> {
  if (dns.upstream || !r.resolvConf) return chooseUpstream(dns, undefined);
  return chooseUpstream(dns, await r.resolvConf());
}
