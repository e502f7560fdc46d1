/**
 * The systemd units egress writes and ships, as text: their words escaped
 * for systemd, the DNS forwarder's service (`dns.proxy`,
 * kernel/forwarder.ts), `refresh --watch` and the Prometheus export. The
 * boot restore and forward-jump units are in kernel/persist.ts, which also
 * lists what the package ships (`shippedUnits`). systemd/ holds those units
 * as the Debian package installs them (`@EXEC@` the installed
 * /usr/bin/egress, the state directory /var/lib/egress); tests keep them
 * equal to the templates rendered so and run `systemd-analyze verify` on
 * every unit.
 *
 * A template's first line is `@ORIGIN@`: who put the file there. Units
 * `persist` writes say "Installed by egress persist" (and the forwarder's,
 * which `apply` writes too, "Written by egress apply"): how `persist`
 * tells its own files from an administrator's, which it leaves alone.
 */
import { existsSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname } from 'node:path';
import { DEFAULT_STATE_DIR } from './state.js';

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

/** Who wrote a unit: `persist` (or `apply`) from wherever egress runs, or the package. */
export type UnitOrigin = 'written' | 'shipped';

/** The first line of a unit `persist` writes; older egress wrote the same. */
export const PERSIST_ORIGIN = '# Installed by "egress persist"; removed by "egress persist --off".';
export const PACKAGE_ORIGIN = '# Shipped by the egress package; "egress persist" enables it, "egress persist --off" disables it.';

/** Whether a unit's text is one egress wrote (persist or apply), not the package's or an administrator's. */
export function writtenByEgress(text: string): boolean {
  return text.startsWith(PERSIST_ORIGIN) || text.startsWith('# Written by "egress apply"');
}

/** A template with `@ORIGIN@`, `@STATE_DIR@` and `@EXEC@` (the whole command, each word escaped) filled in. */
export function renderTemplate(template: string, exec: readonly string[], stateDir: string, origin: string = PERSIST_ORIGIN): string {
  return template
    .replace('@ORIGIN@', origin)
    .replace(/@STATE_DIR@/g, unitStateDir(stateDir))
    .replace(/@EXEC@/g, exec.map(systemdWord).join(' '));
}

export const DEFAULT_SYSTEMD_DIR = '/etc/systemd/system';

/** What the Debian package installs: the program, and the units in /lib/systemd/system naming it. */
export const PACKAGED_EGRESS = '/usr/bin/egress';
/** The distribution's node, which runs the forwarder with its flags (egress-dns.service). */
export const PACKAGED_NODE = '/usr/bin/node';
/** Where packages put units: /lib/systemd/system (Debian), /usr/lib/systemd/system (merged /usr, other distributions). */
export const PACKAGED_UNIT_DIRS = ['/lib/systemd/system', '/usr/lib/systemd/system'];

/** Where `persist` looks for the package's units; `EGRESS_PACKAGED_UNIT_DIR` overrides (tests). */
export function packagedUnitDirsOf(env: Record<string, string | undefined>): string[] {
  return env.EGRESS_PACKAGED_UNIT_DIR ? [env.EGRESS_PACKAGED_UNIT_DIR] : PACKAGED_UNIT_DIRS;
}

/** The default policy the shipped refresh unit names. */
export const PACKAGED_POLICY = '/etc/egress/policy.yaml';
/** Where Debian's prometheus-node-exporter reads textfiles (its --collector.textfile.directory). */
export const PROMETHEUS_TEXTFILE = '/var/lib/prometheus/node-exporter/egress.prom';

/** The state directory the package's units name. */
export const PACKAGED_STATE_DIR = DEFAULT_STATE_DIR;

/** Whether two paths name the same file (through links); plain equality when either is missing. */
export function sameFile(a: string, b: string): boolean {
  if (a === b) return true;
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return false;
  }
}

/**
 * Why a program path is no place for a boot unit to run: `temporary` (/tmp,
 * /var/tmp, /dev/shm, /run, $TMPDIR: emptied at boot, or any day) or `home`
 * (/home, /root, $HOME: may be unmounted, encrypted or on the network at
 * boot); undefined when neither, as given or through its links.
 */
export function unstablePath(path: string, env: Record<string, string | undefined>): 'temporary' | 'home' | undefined {
  const under = (p: string, dirs: string[]) => dirs.some((d) => d !== '/' && (p === d || p.startsWith(d.endsWith('/') ? d : `${d}/`)));
  const temp = ['/tmp', '/var/tmp', '/dev/shm', '/run', tmpdir(), ...(env.TMPDIR ? [env.TMPDIR] : [])];
  const home = ['/home', '/root', ...(env.HOME ? [env.HOME] : [])];
  const paths = [path];
  try {
    if (existsSync(path)) paths.push(realpathSync(path));
  } catch {
    /* as given */
  }
  if (paths.some((p) => under(p, temp))) return 'temporary';
  if (paths.some((p) => under(p, home))) return 'home';
  return undefined;
}

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
export const DNS_UNIT_TEMPLATE = `@ORIGIN@
# The DNS forwarder of a dns.proxy policy; systemd restarts it when it dies.
# At boot it starts once egress-restore.service has loaded the confirmed
# ruleset, whose DNS redirect makes name service fail closed until the
# forwarder is up; it is skipped when that ruleset has no dns.proxy (no
# dns-forwarder.json). See docs/dns-forwarder.md.
[Unit]
Description=egress: DNS forwarder of the dns.proxy egress policy
Documentation=man:egress(8)
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

/** Who writes the forwarder's unit: `apply` (to /run) and `persist` (to /etc). */
export const DNS_WRITTEN_ORIGIN = `# Written by "egress apply" to /run/systemd/system (gone at reboot) and by
# "egress persist" to /etc/systemd/system, enabled from sysinit.target;
# "egress persist --off" removes the latter.`;

/** The forwarder's unit for this state directory; `exec` is the whole command (kernel/forwarder.ts forwarderCommand). */
export function renderDnsUnit(exec: readonly string[], stateDir: string, origin: string = DNS_WRITTEN_ORIGIN): string {
  return renderTemplate(DNS_UNIT_TEMPLATE, exec, stateDir, origin);
}

export const REFRESH_UNIT_NAME = 'egress-refresh.service';

/**
 * `refresh --watch` of the default policy: the applied policy's hostname
 * sets follow DNS, each name on its TTL. Shipped, not enabled: a policy
 * without hostnames has nothing to refresh, and refresh refuses any file but
 * the applied one. After the network and the boot restore (and the
 * forwarder, whose redirect name lookups go through with dns.proxy).
 */
export const REFRESH_UNIT_TEMPLATE = `# Shipped by the egress package, not enabled: "systemctl enable --now egress-refresh.service"
# keeps the hostname sets of the applied policy current, each name on its own
# DNS TTL ("egress refresh --watch"). The policy named below must be the one
# applied ("egress refresh" refuses another); to watch another file, override
# ExecStart= with "systemctl edit egress-refresh.service". See docs/lifecycle.md.
[Unit]
Description=egress: keep the applied egress policy's hostname sets current (refresh --watch)
Documentation=man:egress(8)
Wants=network-online.target
After=network-online.target nss-lookup.target egress-restore.service egress-dns.service
RequiresMountsFor=@STATE_DIR@

[Service]
Type=exec
Environment=EGRESS_STATE_DIR=@STATE_DIR@
ExecStart=@EXEC@ refresh --watch ${PACKAGED_POLICY}
# A round that fails (the policy changed and was not applied, the lock held
# for long) ends the watch: start again 30 s later (below systemd's limit of
# 5 starts in 10 s, so it keeps trying), and say so in the journal.
Restart=on-failure
RestartSec=30s
NoNewPrivileges=yes
PrivateTmp=yes
ProtectHome=read-only

[Install]
WantedBy=multi-user.target
`;

export const STATS_UNIT_NAME = 'egress-stats.service';
export const STATS_TIMER_NAME = 'egress-stats.timer';

/**
 * The Prometheus textfile export, every 5 minutes: what the kernel log says
 * egress denied in the last day (`stats --journal --since 1d --prometheus`;
 * Debian 12 logs the kernel to the journal, not kern.log), written atomically
 * (`--output`: temporary file + rename) where Debian's
 * prometheus-node-exporter reads textfiles; skipped while that directory is
 * absent. The counter samples `egress stale` reads want an hour between
 * them, not 5 minutes, so they have a timer of their own (egress-sample).
 */
export const STATS_UNIT_TEMPLATE = `# Shipped by the egress package, started by egress-stats.timer ("systemctl enable --now
# egress-stats.timer"): the denied connections of the last day, from the
# kernel log in the journal, as Prometheus text where Debian's
# prometheus-node-exporter reads textfiles. See docs/observe.md.
[Unit]
Description=egress: export denied connections for the Prometheus node exporter
Documentation=man:egress(8)
After=egress-restore.service
RequiresMountsFor=@STATE_DIR@
ConditionPathIsDirectory=${dirname(PROMETHEUS_TEXTFILE)}

[Service]
Type=oneshot
Environment=EGRESS_STATE_DIR=@STATE_DIR@
ExecStart=@EXEC@ stats --journal --since 1d --prometheus --output ${PROMETHEUS_TEXTFILE}
Nice=10
IOSchedulingClass=idle
NoNewPrivileges=yes
PrivateTmp=yes
ProtectHome=read-only
ProtectSystem=full
`;

export const STATS_TIMER_TEMPLATE = `# Shipped by the egress package, not enabled: "systemctl enable --now egress-stats.timer".
[Unit]
Description=egress: export denied connections for Prometheus every 5 minutes
Documentation=man:egress(8)

[Timer]
OnBootSec=2min
OnUnitActiveSec=5min
AccuracySec=30s

[Install]
WantedBy=timers.target
`;

export const SAMPLE_UNIT_NAME = 'egress-sample.service';
export const SAMPLE_TIMER_NAME = 'egress-sample.timer';

export const SAMPLE_UNIT_TEMPLATE = `# Shipped by the egress package, started by egress-sample.timer ("systemctl enable --now
# egress-sample.timer"): records the live per-rule counters in
# @STATE_DIR@/counters.jsonl for "egress stale" ("egress stats --sample").
# Fails while nothing is applied. See docs/observe.md.
[Unit]
Description=egress: sample the live per-rule counters for "egress stale"
Documentation=man:egress(8)
After=egress-restore.service
RequiresMountsFor=@STATE_DIR@

[Service]
Type=oneshot
Environment=EGRESS_STATE_DIR=@STATE_DIR@
ExecStart=@EXEC@ stats --sample
NoNewPrivileges=yes
PrivateTmp=yes
ProtectHome=read-only
`;

export const SAMPLE_TIMER_TEMPLATE = `# Shipped by the egress package, not enabled: "systemctl enable --now egress-sample.timer".
[Unit]
Description=egress: sample the live per-rule counters every hour
Documentation=man:egress(8)

[Timer]
OnCalendar=hourly
RandomizedDelaySec=5min
Persistent=yes

[Install]
WantedBy=timers.target
`;
