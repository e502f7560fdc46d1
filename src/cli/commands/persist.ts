/**
 * `egress persist [--off]`: enable (or disable) egress-restore.service, which
 * restores the last confirmed policy at boot before the network comes up,
 * egress-dns.service, which then starts its DNS forwarder (dns.proxy), and
 * egress-forward.service. Installed as a package, the package's units are
 * enabled; run from anywhere else, persist writes its own, naming the
 * program as it runs now — refused when that is in a temporary directory
 * (gone at reboot: the unit could not even lock the host down), warned
 * about when it is in a home directory.
 * `egress _restore-boot` (hidden) is what the restore unit runs.
 */
import { existsSync } from 'node:fs';
import { selfCommand } from '../../kernel/confirm.js';
import { forwarderRunOf } from '../../kernel/forwarder.js';
import { ifupdownDirOf, installIfupdownHook, packagedUnits, persistOff, persistOn, reassertForwardJump, removeIfupdownHook, restoreAtBoot, systemdDirOf } from '../../kernel/persist.js';
import { readState } from '../../kernel/state.js';
import { packagedUnitDirsOf, unstablePath } from '../../kernel/units.js';
import { CommandError, type Io } from '../io.js';
import { writeResult } from '../envelope.js';
import { lifecycleCtx, lifecycleFailure, needRoot, type KernelSeams } from '../kernel-flags.js';

export async function persistCommand(io: Io, flags: { off?: boolean; json?: boolean; force?: boolean }, seams: KernelSeams = {}): Promise<number> {
  needRoot('persist', seams);
  const ctx = lifecycleCtx(io, seams);
  const dir = systemdDirOf(io.env);
  try {
    if (flags.off) {
      const hook = removeIfupdownHook(ifupdownDirOf(io.env));
      const removed = [...(await persistOff(ctx.w, dir)), ...(hook ? [hook] : [])];
      if (flags.json) writeResult(io, 'persist', { ok: true, result: { persist: false, removed } });
      else io.stdout(removed.length ? `persistence off: removed ${removed.join(', ')}; the live ruleset is untouched, but it will not come back after a reboot\n` : 'persistence was not on; nothing to remove\n');
      return 0;
    }
    const confirmed = readState(ctx.stateDir, 'confirmed');
    if (!confirmed || confirmed.kind !== 'ruleset') throw new CommandError('nothing confirmed to restore at boot: apply (and, with --confirm, confirm) a policy first');
    const self = seams.self ?? selfCommand();
    const packagedDirs = packagedUnitDirsOf(io.env);
    const pkg = packagedUnits(packagedDirs, self, ctx.stateDir);
    if (!pkg || !('dir' in pkg)) stableProgram(io, self, !!flags.force);
    const r = await persistOn(ctx.w, dir, self, ctx.stateDir, packagedDirs);
    const written = r.files;
    // The units only do something where systemd runs them: say so where it does not (it said "persistence on" regardless).
    const systemd = (seams.systemdBooted ?? (() => existsSync('/run/systemd/system')))();
    // Without systemd, ifupdown's pre-up hooks are what Debian-style hosts run before the network: use them where they exist.
    const hook = systemd ? undefined : installIfupdownHook(ifupdownDirOf(io.env), self, ctx.stateDir);
    const notes = [
      ...(r.notPackaged ? [`the package's units were not used: ${r.notPackaged}; persist wrote its own to ${dir}, which take precedence`] : []),
      ...r.replaced.map((f) => `removed ${f}, written by an earlier persist: it would override the package's unit`),
      ...r.overrides.map((f) => `${f} overrides the package's unit and was not written by egress: left as it is`),
    ];
    if (flags.json)
      writeResult(io, 'persist', {
        ok: true,
        result: {
        persist: systemd || !!hook,
        files: [...written, ...(hook ? [hook] : [])],
        policyFile: confirmed.policyFile,
        dns: !!confirmed.dns,
        ...(r.packaged ? { packaged: r.packaged } : {}),
        ...(r.replaced.length ? { replaced: r.replaced } : {}),
        ...(r.overrides.length ? { overrides: r.overrides } : {}),
        ...(r.notPackaged ? { notPackaged: r.notPackaged } : {}),
        ...(systemd ? {} : { bootedBySystemd: false }),
        ...(hook ? { ifupdownHook: hook } : {}),
        },
      });
    else {
      for (const n of notes) io.stderr(`egress: note: ${n}\n`);
      const whose = r.packaged ? "the package's " : '';
      if (hook) {
        io.stdout(`units ${r.packaged ? 'enabled' : 'written'}: ${written.join(', ')} (this host was not booted by systemd: nothing runs them)\n`);
        io.stdout(
          `persistence on: ${hook} (an ifupdown pre-up hook) restores ${confirmed.policyFile}${confirmed.dns ? ' and starts its DNS forwarder' : ''} at boot, before the first interface comes up; if it cannot, egress traffic is locked down. Interfaces not brought up by ifupdown do not run it: check /etc/network/interfaces\n`,
        );
      } else if (!systemd) {
        io.stdout(`units ${r.packaged ? 'enabled' : 'written'}: ${written.join(', ')}
`);
        io.stdout(
          `but this host was not booted by systemd (no /run/systemd/system), so nothing will run them: the rules will NOT come back after a reboot.
Run "egress _restore-boot" early at boot, before the network comes up (an init script, or an ifupdown "pre-up" line of the first interface); it restores ${confirmed.policyFile}${confirmed.dns ? ' and starts its DNS forwarder' : ''}, or locks egress down when it cannot
`,
        );
      } else {
        io.stdout(`persistence on: ${whose}${written[0]} (enabled via ${written[1]}) restores ${confirmed.policyFile} at boot, before the network; if it cannot, egress traffic is locked down\n`);
        io.stdout(
          `${whose}${written[2]} (enabled via ${written[3]}) then starts the DNS forwarder when the restored policy has dns.proxy${confirmed.dns ? ' (this one has: until it is up, name service fails; what it learned before the reboot is gone)' : ''}\n`,
        );
        io.stdout(`${whose}${written[4]} (enabled via ${written[5]}) puts the forward scope's jump first in DOCKER-USER once Docker is up (iptables backend with "forward:"; otherwise it does nothing)\n`);
      }
    }
    return 0;
  } catch (e) {
    if (e instanceof CommandError) throw e;
    return lifecycleFailure(io, e, undefined, flags.json ? 'persist' : undefined);
  }
}

/**
 * A boot unit runs the program as persist runs now: refuse a program in a
 * temporary directory (emptied at boot — the restore could not run, so the
 * host would boot with no egress rules at all, not even the lockdown), warn
 * about one in a home directory (unmounted, encrypted or on the network at
 * boot on some hosts).
 */
function stableProgram(io: Io, self: readonly string[], force: boolean): void {
  for (const p of new Set([self[0]!, self[self.length - 1]!])) {
    const why = unstablePath(p, io.env);
    if (why === 'temporary' && force)
      io.stderr(`egress: WARNING: the boot unit runs ${p}, in a temporary directory (--force): if it is emptied at boot, the restore cannot run and the host comes up with no egress rules at all\n`);
    else if (why === 'temporary')
      throw new CommandError(
        `${p} is in a temporary directory, which is emptied at boot: the boot unit could not run it, and the host would come up with no egress rules at all. Install egress where it stays (the Debian package, "npm install -g", or a checkout outside temporary directories) and run persist from there (--force persists anyway, where that directory survives a reboot)`,
      );
    if (why === 'home')
      io.stderr(
        `egress: WARNING: the boot unit runs ${p}, in a home directory: if it is not mounted (or readable) early at boot, the restore cannot run and the host comes up with no egress rules at all. Install egress outside home directories (the Debian package, or "npm install -g") and run persist again from there
`,
      );
  }
}

/** `egress _forward-jump` (hidden): what egress-forward.service runs once Docker is up. */
export async function forwardJumpCommand(io: Io, seams: KernelSeams = {}): Promise<number> {
  const ctx = lifecycleCtx(io, seams);
  try {
    io.stdout(`egress: ${await reassertForwardJump(ctx.w, ctx.stateDir)}\n`);
    return 0;
  } catch (e) {
    io.stderr(`egress: cannot put the forward jump back first: ${(e as Error).message.split('\n')[0]}\n`);
    return 1;
  }
}

export async function restoreBootCommand(io: Io, seams: KernelSeams = {}): Promise<number> {
  const ctx = lifecycleCtx(io, seams);
  const r = await restoreAtBoot(ctx.w, ctx.stateDir, ctx.now(), ctx.who, forwarderRunOf(ctx.env, ctx.w, ctx.self));
  const failed = r.outcome === 'lockdown' || r.dnsFailed !== undefined;
  (failed ? io.stderr : io.stdout)(`egress: ${r.message}\n`);
  return failed ? 1 : 0;
}
