/** The policy `egress init` writes and `egress lab` rehearses when given none. */
export const STARTER_POLICY = `# egress policy: what this host may connect OUT to.
# Check it:     egress check policy.yaml
# Rehearse it:  egress lab policy.yaml      (network namespaces; your firewall is untouched)
# Ask it:       egress explain policy.yaml --to 192.0.2.53 --port udp/53
# Reference:    the README's "Policy reference". Order in this file never matters.
version: 1

# enforce: block what no rule allows.  audit: only log and count it (roll out with audit first).
mode: enforce
# What happens to traffic no rule allows: reject (fail fast), drop, or accept.
default: reject

log:
  prefix: "EGRESS "   # kernel log lines start with this (keep it to 20 characters)
  rate: 10/second     # log lines are rate-limited; counters stay exact

# Accepted before any rule (all default to true; turning them off warns):
builtins:
  loopback: true      # anything out of lo
  established: true   # replies and related traffic of existing connections (your SSH session)
  icmpv6_nd: true     # IPv6 neighbour/router discovery and MLD: IPv6 dies without it

sets:
  # Package mirrors by name: resolved through the system resolver (pin them in
  # /etc/hosts if you like) and refreshable in place with "egress refresh".
  mirrors: [deb.debian.org, security.debian.org]

allow:
  - name: dns
    reason: the internal resolvers only (DNS anywhere is an exfiltration channel)
    to: [192.0.2.53, "2001:db8::53"]        # replace with your resolvers
    ports: [udp/53, tcp/53]

  - name: ntp
    reason: time sync with the internal time servers
    to: [192.0.2.123, "2001:db8::123"]      # replace with your NTP servers
    ports: [udp/123]

  - name: mirrors
    reason: package updates (apt) over HTTP and HTTPS
    to: [$mirrors]
    ports: [tcp/80, tcp/443]

  - name: ping
    reason: reachability checks (echo-request on IPv4 and IPv6)
    icmp: [echo-request]

deny:
  - name: metadata
    reason: no cloud instance-metadata access from this host
    to: [169.254.169.254, "fd00:ec2::254"]
`;
