/**
 * Persistence: the last *confirmed* ruleset is loaded at boot, before the
 * network comes up, by `egress-restore.service` (systemd/ holds the
 * template, kept equal to UNIT_TEMPLATE by a test). If it cannot be loaded
 * — state missing or corrupted, the kernel refusing it — the host fails
 * closed: a lockdown ruleset admits only loopback, replies of established
 * connections (so an operator can still log in over SSH) and IPv6 neighbour
 * discovery, and the unit fails so that `systemctl --failed` shows it.
 *
 * At boot nothing is resolved (the network is not up): the sets keep the
 * addresses the confirmed ruleset was saved with; `egress refresh` updates
 * them later.
 *
 * `dns.proxy`: persist also installs and enables `egress-dns.service`
 * (kernel/units.ts), ordered after this unit. The restore writes the
 * forwarder's configuration from the confirmed snapshot (or removes it, and
 * the unit's condition skips it); the DNS redirect is in the restored ruleset,
 * so name service fails closed until the forwarder is up. Without systemd,
 * `_restore-boot` starts the forwarder itself, as a detached process.
 * Learned addresses do not survive a reboot: the kernel held them.
 */
import { chmodSync, mkdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { NFT_TABLE } from '../backends/nft/emit.js';
import { FORWARD_JUMP } from '../backends/iptables/emit.js';
import { driftLines, forwardJumpDrift } from './forward-host.js';
import { loadIptables, readIptables } from './iptables.js';
import { ICMPV6_ND_TYPES } from '../policy/protocols.js';
import { backendInstalled, load, readLive, removeOwned } from './backend.js';
import { disarmWatchdog } from './confirm.js';
import { ensureDnsGroup, forwarderCommand, forwarderUnit, removeForwarderSpec, startForwarder, writeForwarderSpec, type ForwarderRun } from './forwarder.js';
import { appendHistory } from './history.js';
import { acquireLock, acquireLockWaiting, type Lock } from './lock.js';
import { ensureStateDir, readState, removeState, writeState, StateError, type Snapshot } from './state.js';
import {
  DEFAULT_SYSTEMD_DIR,
  DNS_UNIT_NAME,
  PACKAGE_ORIGIN,
  PACKAGED_EGRESS,
  PACKAGED_NODE,
  PACKAGED_STATE_DIR,
  PERSIST_ORIGIN,
  REFRESH_UNIT_NAME,
  REFRESH_UNIT_TEMPLATE,
  renderDnsUnit,
  renderTemplate,
  SAMPLE_TIMER_NAME,
  SAMPLE_TIMER_TEMPLATE,
  SAMPLE_UNIT_NAME,
  SAMPLE_UNIT_TEMPLATE,
  sameFile,
  STATS_TIMER_NAME,
  STATS_TIMER_TEMPLATE,
  STATS_UNIT_NAME,
  STATS_UNIT_TEMPLATE,
  systemdDirOf,
  systemdWord,
  writtenByEgress,
} from './units.js';
import { mustRun, type Where } from './where.js';

export { DEFAULT_SYSTEMD_DIR, systemdDirOf, systemdWord };

export const UNIT_NAME = 'egress-restore.service';
export const WANTED_BY = 'sysinit.target';

export const UNIT_TEMPLATE = `@ORIGIN@
# Restores the last confirmed egress policy at boot, before the network comes
# up, and fails closed (loopback, established replies and IPv6 neighbour
# discovery only) when it cannot. See docs/lifecycle.md.
[Unit]
Description=egress: restore the last confirmed egress firewall policy
Documentation=man:egress(8)
DefaultDependencies=no
Wants=network-pre.target
Before=network-pre.target shutdown.target
After=local-fs.target nftables.service netfilter-persistent.service
RequiresMountsFor=@STATE_DIR@
Conflicts=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
Environment=EGRESS_STATE_DIR=@STATE_DIR@
ExecStart=@EXEC@ _restore-boot

[Install]
WantedBy=${WANTED_BY}
`;

/**
 * Docker puts its FORWARD jumps first whenever it starts; the boot restore
 * ran before it, when there was no DOCKER-USER, so on the iptables backend
 * egress's forward jump ends up below Docker's accepts. This unit runs once
 * Docker is up (and again when it restarts) and puts the jump back where it
 * belongs (`_forward-jump`); it does nothing for nft or without `forward:`.
 */
export const FORWARD_UNIT_NAME = 'egress-forward.service';
export const FORWARD_WANTED_BY = 'docker.service';

export const FORWARD_UNIT_TEMPLATE = `@ORIGIN@
# Once Docker has started, puts egress's forward jump (iptables backend,
# policy with "forward:") first in DOCKER-USER, where Docker keeps it: see
# docs/forward.md. Does nothing for the nft backend or without "forward:".
[Unit]
Description=egress: the forward scope's jump first in DOCKER-USER, once Docker is up
Documentation=man:egress(8)
After=docker.service egress-restore.service
RequiresMountsFor=@STATE_DIR@

[Service]
Type=oneshot
Environment=EGRESS_STATE_DIR=@STATE_DIR@
ExecStart=@EXEC@ _forward-jump

[Install]
WantedBy=${FORWARD_WANTED_BY}
`;

export function renderUnit(exec: readonly string[], stateDir: string, template = UNIT_TEMPLATE, origin: string = PERSIST_ORIGIN): string {
  return renderTemplate(template, exec, stateDir, origin);
}

/** The forwarder's unit as the package ships it (the origin line says so). */
const PACKAGE_DNS_ORIGIN = `${PACKAGE_ORIGIN}
# "egress apply" writes its own copy to /run/systemd/system (gone at reboot), which takes precedence.`;

/**
 * The units persist manages: each with the unit that wants it, rendered for
 * a command line and state directory as persist writes it or as the package
 * ships it (restore and forward run /usr/bin/egress itself; the forwarder
 * needs node's flags, so node runs it).
 */
const MANAGED: { name: string; wantedBy: string; written(self: readonly string[], stateDir: string): string; shipped(stateDir: string): string }[] = [
  {
    name: UNIT_NAME,
    wantedBy: WANTED_BY,
    written: (self, d) => renderUnit(self, d),
    shipped: (d) => renderUnit([PACKAGED_EGRESS], d, UNIT_TEMPLATE, PACKAGE_ORIGIN),
  },
  {
    name: DNS_UNIT_NAME,
    wantedBy: WANTED_BY,
    written: (self, d) => forwarderUnit([...self], d),
    shipped: (d) => renderDnsUnit(forwarderCommand([PACKAGED_NODE, PACKAGED_EGRESS], d), d, PACKAGE_DNS_ORIGIN),
  },
  {
    name: FORWARD_UNIT_NAME,
    wantedBy: FORWARD_WANTED_BY,
    written: (self, d) => renderUnit(self, d, FORWARD_UNIT_TEMPLATE),
    shipped: (d) => renderUnit([PACKAGED_EGRESS], d, FORWARD_UNIT_TEMPLATE, PACKAGE_ORIGIN),
  },
];

/**
 * Every unit the package ships, by file name, as systemd/ holds it: the ones
 * persist enables, and the ones an operator enables (refresh --watch, the
 * Prometheus export, the counter samples).
 */
export function shippedUnits(stateDir: string = PACKAGED_STATE_DIR): [string, string][] {
  const exec = [PACKAGED_EGRESS];
  return [
    ...MANAGED.map((m): [string, string] => [m.name, m.shipped(stateDir)]),
    [REFRESH_UNIT_NAME, renderTemplate(REFRESH_UNIT_TEMPLATE, exec, stateDir)],
    [STATS_UNIT_NAME, renderTemplate(STATS_UNIT_TEMPLATE, exec, stateDir)],
    [STATS_TIMER_NAME, STATS_TIMER_TEMPLATE],
    [SAMPLE_UNIT_NAME, renderTemplate(SAMPLE_UNIT_TEMPLATE, exec, stateDir)],
    [SAMPLE_TIMER_NAME, SAMPLE_TIMER_TEMPLATE],
  ];
}

/** What `persistOn` did. */
export interface Persisted {
  /** The package's unit directory whose units were enabled; absent when persist wrote its own. */
  packaged?: string;
  /** Each unit followed by its link. */
  files: string[];
  /** Units an earlier persist wrote to the unit directory, removed because they would override the package's. */
  replaced: string[];
  /** Files in the unit directory that override the package's units and that egress did not write: left as they are. */
  overrides: string[];
  /** The package's units were there but could not be used (persist wrote its own): why. */
  notPackaged?: string;
}

/**
 * The package's units, when they are there and run this egress for this
 * state directory: the directory that holds them; else why not (undefined:
 * no package installed).
 */
export function packagedUnits(dirs: readonly string[], self: readonly string[], stateDir: string): { dir: string } | { why: string } | undefined {
  for (const dir of dirs) {
    const restore = join(dir, UNIT_NAME);
    if (!existsSync(restore)) continue;
    const missing = MANAGED.filter((m) => !existsSync(join(dir, m.name))).map((m) => m.name);
    if (missing.length) return { why: `${dir} has ${UNIT_NAME} but not ${missing.join(', ')}` };
    const text = readFileSync(restore, 'utf8');
    const exec = /^ExecStart=(\S+)/m.exec(text)?.[1];
    const script = self[self.length - 1]!;
    if (!exec || !sameFile(exec, script)) return { why: `${restore} runs ${exec ?? 'nothing'}, not this egress (${script})` };
    const theirs = /^Environment=EGRESS_STATE_DIR=(\S+)/m.exec(text)?.[1];
    if (theirs !== stateDir) return { why: `${restore} restores ${theirs ?? 'no state directory'}, not ${stateDir}` };
    return { dir };
  }
  return undefined;
}

/**
 * Enable the units (the `[Install]` symlinks, as `systemctl enable` makes
 * them): the boot restore, the DNS forwarder, which boot skips unless the
 * restored ruleset has dns.proxy, and the forward jump. When the package's
 * units run this egress (`packagedDirs`), those are linked, and copies an
 * earlier persist wrote to `unitDir` — which would override them, naming
 * another program — are removed; otherwise persist writes its own into
 * `unitDir`. Reload systemd when it runs.
 */
export async function persistOn(w: Where, unitDir: string, self: readonly string[], stateDir: string, packagedDirs: readonly string[] = []): Promise<Persisted> {
  const pkg = packagedUnits(packagedDirs, self, stateDir);
  const out: Persisted = { files: [], replaced: [], overrides: [], ...(pkg && 'dir' in pkg ? { packaged: pkg.dir } : {}), ...(pkg && 'why' in pkg ? { notPackaged: pkg.why } : {}) };
  for (const m of MANAGED) {
    const wants = join(unitDir, `${m.wantedBy}.wants`);
    mkdirSync(wants, { recursive: true });
    const own = join(unitDir, m.name);
    let unit = own;
    if (out.packaged) {
      unit = join(out.packaged, m.name);
      const text = readOrUndefined(own);
      if (text !== undefined && writtenByEgress(text)) {
        rmSync(own, { force: true });
        out.replaced.push(own);
      } else if (text !== undefined) out.overrides.push(own);
    } else writeFileSync(own, m.written(self, stateDir), { mode: 0o644 });
    const link = join(wants, m.name);
    let ok = false;
    try {
      ok = readlinkSync(link) === unit;
    } catch {
      /* absent */
    }
    if (!ok) {
      rmSync(link, { force: true });
      symlinkSync(unit, link);
    }
    out.files.push(unit, link);
  }
  await daemonReload(w);
  return out;
}

/**
 * Undo persistOn: its links, and the units it wrote (never the package's,
 * nor a file in their place egress did not write). A running forwarder
 * keeps running until the life cycle stops it.
 */
export async function persistOff(w: Where, unitDir: string): Promise<string[]> {
  const removed: string[] = [];
  for (const m of MANAGED) {
    const link = join(unitDir, `${m.wantedBy}.wants`, m.name);
    if (isLink(link)) {
      rmSync(link, { force: true });
      removed.push(link);
    }
    const own = join(unitDir, m.name);
    const text = readOrUndefined(own);
    if (text !== undefined && writtenByEgress(text)) {
      rmSync(own, { force: true });
      removed.push(own);
    }
  }
  await daemonReload(w);
  return removed;
}

function readOrUndefined(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * Where a host not booted by systemd brings interfaces up with ifupdown
 * (Debian's /etc/network/interfaces): its pre-up hooks run before each
 * interface comes up, lo first. `EGRESS_IFUPDOWN_DIR` overrides (tests).
 */
export const DEFAULT_IFUPDOWN_DIR = '/etc/network/if-pre-up.d';
export const IFUPDOWN_HOOK_NAME = 'egress';

export function ifupdownDirOf(env: Record<string, string | undefined>): string {
  return env.EGRESS_IFUPDOWN_DIR || DEFAULT_IFUPDOWN_DIR;
}

/** One shell word, single-quoted. */
function shWord(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * The ifupdown pre-up hook: the first time after boot (a marker in /run,
 * which boot empties) it runs `_restore-boot`, before any interface but lo is
 * up — the confirmed policy, or the lockdown. It never keeps an interface
 * down: a failed restore is the lockdown, which still lets established
 * replies and loopback through, and the hook exits 0 whatever happened.
 */
export function renderIfupdownHook(exec: string[], stateDir: string): string {
  return `#!/bin/sh
# Installed by "egress persist" on a host not booted by systemd; removed by
# "egress persist --off". ifupdown runs it before each interface comes up;
# the first time after boot it restores the last confirmed egress policy
# (or locks egress down when it cannot). See docs/lifecycle.md.
marker="\${EGRESS_RUN_DIR:-/run}/egress-restored"
[ -e "$marker" ] && exit 0
: > "$marker" 2>/dev/null
restore() { EGRESS_STATE_DIR=${shWord(stateDir)} ${exec.map(shWord).join(' ')} _restore-boot; }
if command -v logger >/dev/null 2>&1; then restore 2>&1 | logger -t egress; else restore; fi
exit 0
`;
}

/** Install the ifupdown hook (a host not booted by systemd that uses ifupdown); undefined when ifupdown's hook directory is absent. */
export function installIfupdownHook(dir: string, self: string[], stateDir: string): string | undefined {
  if (!existsSync(dir)) return undefined;
  const path = join(dir, IFUPDOWN_HOOK_NAME);
  writeFileSync(path, renderIfupdownHook(self, stateDir), { mode: 0o755 });
  chmodSync(path, 0o755);
  return path;
}

/** Remove the ifupdown hook; the path when there was one. */
export function removeIfupdownHook(dir: string): string | undefined {
  const path = join(dir, IFUPDOWN_HOOK_NAME);
  if (!existsSync(path)) return undefined;
  rmSync(path, { force: true });
  return path;
}

/** Whether `persist` is on: the restore unit is enabled from `unitDir` and its link leads to a unit (its own, or the package's). */
export function persistEnabled(unitDir: string): boolean {
  const link = join(unitDir, `${WANTED_BY}.wants`, UNIT_NAME);
  return isLink(link) && existsSync(link);
}

function isLink(p: string): boolean {
  try {
    readlinkSync(p);
    return true;
  } catch {
    return false;
  }
}

async function daemonReload(w: Where): Promise<void> {
  if (existsSync('/run/systemd/system')) await w.execer.run('systemctl', ['daemon-reload']);
}

/** The fail-closed ruleset for nft. */
export const LOCKDOWN_NFT = `table ${NFT_TABLE} {}
delete table ${NFT_TABLE}
table ${NFT_TABLE} {
	comment "egress: lockdown, the saved policy could not be restored"
	chain output {
		type filter hook output priority filter; policy accept;
		oif "lo" accept
		ct state established,related accept
		meta nfproto ipv6 icmpv6 type { ${ICMPV6_ND_TYPES.join(', ')} } accept
		limit rate 10/second log prefix "EGRESS lockdown "
		meta l4proto tcp reject with tcp reset
		reject with icmpx admin-prohibited
	}
}
`;

/** The fail-closed ruleset for iptables (both sections, as the iptables backend emits them). */
export function lockdownIptables(): string {
  const section = (f: 'ipv4' | 'ipv6') => {
    const nd = f === 'ipv6' ? ICMPV6_ND_TYPES.map((t) => `-A EGRESS -p ipv6-icmp -m icmp6 --icmpv6-type ${t} -j ACCEPT`) : [];
    const reject = f === 'ipv4' ? 'icmp-admin-prohibited' : 'icmp6-adm-prohibited';
    return [
      `# egress: ${f}`,
      '*filter',
      ':EGRESS - [0:0]',
      '-F EGRESS',
      '-A EGRESS -o lo -j ACCEPT',
      '-A EGRESS -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
      ...nd,
      '-A EGRESS -m limit --limit 10/sec -j LOG --log-prefix "EGRESS lockdown "',
      '-A EGRESS -p tcp -j REJECT --reject-with tcp-reset',
      `-A EGRESS -j REJECT --reject-with ${reject}`,
      '-I OUTPUT 1 -j EGRESS',
      'COMMIT',
    ].join('\n');
  };
  return `${section('ipv4')}\n${section('ipv6')}\n`;
}

export interface BootResult {
  outcome: 'restored' | 'nothing' | 'lockdown';
  message: string;
  /** dns.proxy without systemd: the forwarder `_restore-boot` started could not start (the host stays fail-closed for DNS). */
  dnsFailed?: string;
}

/**
 * Boot: load confirmed.json, or fail closed. An apply that was still
 * awaiting confirmation is not restored (it was never confirmed) and is
 * recorded as rolled back; an interrupted command's intent record is dropped
 * (the confirmed ruleset is what boot wants either way).
 */
export async function restoreAtBoot(w: Where, stateDir: string, now: Date, who: { user: string; uid: number }, fwd?: ForwarderRun): Promise<BootResult> {
  // Any failure on the way — a lock held (by a pid that came back to life at boot), an unsafe
  // state directory, a kernel listing that fails — ends in the lockdown, never in an open host.
  let lock: Lock | undefined;
  try {
    ensureStateDir(stateDir);
    lock = acquireLock(stateDir);
    return await restoreLocked(w, stateDir, now, who, fwd);
  } catch (e) {
    const why = (e as Error).message;
    await lockdown(w);
    return { outcome: 'lockdown', message: `cannot restore the confirmed policy (${why}); egress traffic is locked down to loopback and established connections` };
  } finally {
    lock?.release();
  }
}

async function restoreLocked(w: Where, stateDir: string, now: Date, who: { user: string; uid: number }, fwd?: ForwarderRun): Promise<BootResult> {
  let confirmed: Snapshot | undefined;
  let why = '';
  try {
    confirmed = readState(stateDir, 'confirmed');
    if (!confirmed) why = `no confirmed ruleset in ${stateDir}`;
  } catch (e) {
    why = e instanceof StateError ? e.message : String(e);
  }
  try {
    const p = readState(stateDir, 'pending');
    if (p) {
      await disarmWatchdog(w.execer, p.watchdog);
      removeState(stateDir, 'pending');
      if (confirmed) record(stateDir, now, who, confirmed, 'auto-rollback', 'ok', 'rebooted before the apply was confirmed: the last confirmed ruleset was restored');
    }
    removeState(stateDir, 'applying');
  } catch {
    /* a corrupted pending/applying file does not stop the restore */
  }
  // What egress-dns.service runs, if anything: the confirmed forwarder, and none unless its ruleset is loaded.
  removeForwarderSpec(stateDir);
  if (confirmed?.kind === 'none') return { outcome: 'nothing', message: 'egress was removed: nothing to restore' };
  if (confirmed) {
    const cur = await readLive(w, confirmed.backend);
    const f = await load(w, confirmed.backend, { text: confirmed.ruleset, lineMap: new Map() }, cur);
    if (!f) {
      writeState(stateDir, 'live', confirmed);
      const message = `restored ${confirmed.policyFile} (${confirmed.backend}, ${confirmed.mode}) as confirmed at ${confirmed.appliedAt}`;
      if (!confirmed.dns) return { outcome: 'restored', message };
      writeForwarderSpec(stateDir, confirmed.dns);
      if (fwd?.kind !== 'process') return { outcome: 'restored', message: `${message}; ${DNS_UNIT_NAME} starts its DNS forwarder` };
      try {
        await startForwarder(w, stateDir, fwd, confirmed.dns, await ensureDnsGroup(w));
        return { outcome: 'restored', message: `${message}, and started its DNS forwarder` };
      } catch (e) {
        const dnsFailed = (e as Error).message;
        return { outcome: 'restored', message: `${message}, but ${dnsFailed}: name service fails until the next egress command starts it`, dnsFailed };
      }
    }
    why = f.message;
  }
  await lockdown(w);
  if (confirmed) record(stateDir, now, who, confirmed, 'apply', 'failed', `boot restore failed, locked down: ${why}`);
  return { outcome: 'lockdown', message: `cannot restore the confirmed policy (${why}); egress traffic is locked down to loopback and established connections` };
}

async function lockdown(w: Where): Promise<void> {
  if (backendInstalled('nft')) {
    await mustRun(w, ['nft', '-f', '-'], LOCKDOWN_NFT);
    return;
  }
  const cur = await readLive(w, 'iptables');
  await removeOwned(w, 'iptables', cur);
  const f = await load(w, 'iptables', { text: lockdownIptables(), lineMap: new Map() }, await readLive(w, 'iptables'));
  if (f) throw new Error(`cannot even load the lockdown ruleset: ${f.message}`);
}

function record(stateDir: string, now: Date, who: { user: string; uid: number }, s: Snapshot, action: 'apply' | 'auto-rollback', outcome: 'ok' | 'failed', message: string): void {
  appendHistory(stateDir, { time: now.toISOString(), action, user: who.user, uid: who.uid, policyFile: s.policyFile, policyHash: s.policyHash, backend: s.backend, mode: s.mode, outcome, message });
}

/**
 * `egress _forward-jump` (egress-forward.service, once Docker is up): on the
 * iptables backend with a forward scope, when the jump to EGRESS-FWD is not
 * first where it belongs (DOCKER-USER if it exists, else FORWARD), load the
 * live ruleset again, which moves the jump there (reapply.ts) and changes
 * nothing else. Under the state lock; a no-op otherwise.
 */
export async function reassertForwardJump(w: Where, stateDir: string): Promise<string> {
  const lock = await acquireLockWaiting(stateDir);
  try {
    const live = readState(stateDir, 'live');
    if (!live || live.kind !== 'ruleset' || live.backend !== 'iptables' || !live.ruleset.split('\n').includes(FORWARD_JUMP))
      return 'nothing to do: no live iptables ruleset with a forward scope';
    const cur = await readIptables(w);
    const drift = forwardJumpDrift(cur.save.ipv4, cur.save.ipv6).filter((d) => d.severity === 'warning');
    if (!drift.length) return 'the forward jump is where it belongs';
    const failure = await loadIptables(w, { text: live.ruleset, lineMap: new Map() }, cur.save);
    if (failure) throw new StateError(failure.message);
    const after = (await readIptables(w)).save;
    const left = forwardJumpDrift(after.ipv4, after.ipv6).filter((d) => d.severity === 'warning');
    if (left.length) throw new StateError(`the forward jump is still not first: ${driftLines(left).join('; ')}`);
    return `moved the forward jump back first (${drift.map((d) => `${d.family} ${d.kind}`).join(', ')})`;
  } finally {
    lock.release();
  }
}
