/**
 * The systemd units egress writes, as text: their words escaped for
 * systemd, and the DNS forwarder's service (`dns.proxy`, kernel/forwarder.ts).
 * The boot restore unit is in kernel/persist.ts. systemd/ holds the
 * templates as shipped; tests keep them equal and run `systemd-analyze
 * verify` on what is rendered.
 */

/** One word of an ExecStart= line: quoted when it has spaces, with systemd's `%` and `$` escaped. */
export function systemdWord(s: string): string {
  if (/["'\\\n]/.test(s)) throw new Error(`cannot put ${JSON.stringify(s)} in a systemd unit`);
  const e = s.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  return /\s/.test(e) ? `"${e}"` : e;
}

/** A state directory as a unit names it (Environment=, RequiresMountsFor=, paths): nothing that needs quoting. */
export function unitStateDir(stateDir: string): string {
  if (/[\s"'\\%$]/.test(stateDir)) throw new Error(`the state directory ${JSON.stringify(stateDir)} cannot be named in a systemd unit`);
  return stateDir;
}

export const DEFAULT_SYSTEMD_DIR = '/etc/systemd/system';

/** Where `persist` installs units: /etc/systemd/system, or `EGRESS_SYSTEMD_DIR`. */
export function systemdDirOf(env: Record<string, string | undefined>): string {
  return env.EGRESS_SYSTEMD_DIR || DEFAULT_SYSTEMD_DIR;
}

export const DNS_UNIT_NAME = 'egress-dns.service';

/**
 * The DNS forwarder as a service. Type=exec, not notify: node cannot send
 * sd_notify's datagram without an addon, and `systemd-notify` from a child
 * races its own exit; the life cycle waits for the forwarder's `ready` line
 * in dns-forwarder.out instead, as it does for the detached process.
 */
export const DNS_UNIT_TEMPLATE = `# Written by "egress apply" to /run/systemd/system (gone at reboot) and by
# "egress persist" to /etc/systemd/system, enabled from sysinit.target;
# "egress persist --off" removes the latter. The DNS forwarder of a dns.proxy
# policy; systemd restarts it when it dies. At boot it starts once
# egress-restore.service has loaded the confirmed ruleset, whose DNS redirect
# makes name service fail closed until the forwarder is up; it is skipped when
# that ruleset has no dns.proxy (no dns-forwarder.json). See docs/dns-forwarder.md.
[Unit]
Description=egress: DNS forwarder of the dns.proxy egress policy
DefaultDependencies=no
After=local-fs.target egress-restore.service
Wants=nss-lookup.target
Before=nss-lookup.target shutdown.target
Conflicts=shutdown.target
RequiresMountsFor=@STATE_DIR@
ConditionPathExists=@STATE_DIR@/dns-forwarder.json
# A forwarder that keeps dying (10 starts in a minute) is left failed, so "systemctl --failed" shows it.
StartLimitIntervalSec=60
StartLimitBurst=10

[Service]
Type=exec
# Root with primary group egress-dns: the one group whose DNS the ruleset does not redirect.
Group=egress-dns
Environment=EGRESS_STATE_DIR=@STATE_DIR@ EGRESS_DNS_UNIT=egress-dns.service MALLOC_ARENA_MAX=1
ExecStart=@EXEC@
Restart=always
RestartSec=1s
StandardOutput=append:@STATE_DIR@/dns-forwarder.out
StandardError=inherit
WorkingDirectory=/
UMask=0077
# It needs CAP_NET_ADMIN (nft adds what it learns), CAP_NET_BIND_SERVICE
# (port 153 on loopback), /proc/net (who asked) and the state directory.
# Not MemoryDenyWriteExecute: node's JIT writes executable memory.
CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_BIND_SERVICE
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths=@STATE_DIR@
ProtectHome=read-only
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
SystemCallArchitectures=native

[Install]
WantedBy=sysinit.target
`;

/** The forwarder's unit for this state directory; `exec` is the whole command (kernel/forwarder.ts forwarderCommand). */
export function renderDnsUnit(exec: readonly string[], stateDir: string): string {
  return DNS_UNIT_TEMPLATE.replace(/@STATE_DIR@/g, unitStateDir(stateDir)).replace('@EXEC@', exec.map(systemdWord).join(' '));
}
