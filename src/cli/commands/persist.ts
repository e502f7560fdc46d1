/**
 * `egress persist [--off]`: install (or remove) egress-restore.service, which
 * restores the last confirmed policy at boot before the network comes up,
 * and egress-dns.service, which then starts its DNS forwarder (dns.proxy).
 * `egress _restore-boot` (hidden) is what the restore unit runs.
 */
import { existsSync } from 'node:fs';
import { selfCommand } from '../../kernel/confirm.js';
import { forwarderRunOf } from '../../kernel/forwarder.js';
import { ifupdownDirOf, installIfupdownHook, persistOff, persistOn, reassertForwardJump, removeIfupdownHook, restoreAtBoot, systemdDirOf } from '../../kernel/persist.js';
import { readState } from '../../kernel/state.js';
import { CommandError, type Io } from '../io.js';
import { writeJson } from '../shared.js';
import { lifecycleCtx, lifecycleFailure, needRoot, type KernelSeams } from '../kernel-flags.js';

export async function persistCommand(io: Io, flags: { off?: boolean; json?: boolean }, seams: KernelSeams = {}): Promise<number> {
  needRoot('persist', seams);
  const ctx = lifecycleCtx(io, seams);
  const dir = systemdDirOf(io.env);
  try {
    if (flags.off) {
      const hook = removeIfupdownHook(ifupdownDirOf(io.env));
      const removed = [...(await persistOff(ctx.w, dir)), ...(hook ? [hook] : [])];
      if (flags.json) writeJson(io, { ok: true, persist: false, removed });
      else io.stdout(removed.length ? `persistence off: removed ${removed.join(', ')}; the live ruleset is untouched, but it will not come back after a reboot\n` : 'persistence was not on; nothing to remove\n');
      return 0;
    }
    const confirmed = readState(ctx.stateDir, 'confirmed');
    if (!confirmed || confirmed.kind !== 'ruleset') throw new CommandError('nothing confirmed to restore at boot: apply (and, with --confirm, confirm) a policy first');
    const written = await persistOn(ctx.w, dir, seams.self ?? selfCommand(), ctx.stateDir);
    // The units only do something where systemd runs them: say so where it does not (it said "persistence on" regardless).
    const systemd = (seams.systemdBooted ?? (() => existsSync('/run/systemd/system')))();
    // Without systemd, ifupdown's pre-up hooks are what Debian-style hosts run before the network: use them where they exist.
    const hook = systemd ? undefined : installIfupdownHook(ifupdownDirOf(io.env), seams.self ?? selfCommand(), ctx.stateDir);
    if (flags.json)
      writeJson(io, { ok: true, persist: systemd || !!hook, files: [...written, ...(hook ? [hook] : [])], policyFile: confirmed.policyFile, dns: !!confirmed.dns, ...(systemd ? {} : { bootedBySystemd: false }), ...(hook ? { ifupdownHook: hook } : {}) });
    else if (hook) {
      io.stdout(`units written: ${written.join(', ')} (this host was not booted by systemd: nothing runs them)\n`);
      io.stdout(
        `persistence on: ${hook} (an ifupdown pre-up hook) restores ${confirmed.policyFile}${confirmed.dns ? ' and starts its DNS forwarder' : ''} at boot, before the first interface comes up; if it cannot, egress traffic is locked down. Interfaces not brought up by ifupdown do not run it: check /etc/network/interfaces\n`,
      );
    } else if (!systemd) {
      io.stdout(`units written: ${written.join(', ')}
`);
      io.stdout(
        `but this host was not booted by systemd (no /run/systemd/system), so nothing will run them: the rules will NOT come back after a reboot.
Run "egress _restore-boot" early at boot, before the network comes up (an init script, or an ifupdown "pre-up" line of the first interface); it restores ${confirmed.policyFile}${confirmed.dns ? ' and starts its DNS forwarder' : ''}, or locks egress down when it cannot
`,
      );
    } else {
      io.stdout(`persistence on: ${written[0]} (enabled via ${written[1]}) restores ${confirmed.policyFile} at boot, before the network; if it cannot, egress traffic is locked down\n`);
      io.stdout(
        `${written[2]} (enabled via ${written[3]}) then starts the DNS forwarder when the restored policy has dns.proxy${confirmed.dns ? ' (this one has: until it is up, name service fails; what it learned before the reboot is gone)' : ''}\n`,
      );
      io.stdout(`${written[4]} (enabled via ${written[5]}) puts the forward scope's jump first in DOCKER-USER once Docker is up (iptables backend with "forward:"; otherwise it does nothing)\n`);
    }
    return 0;
  } catch (e) {
    if (e instanceof CommandError) throw e;
    return lifecycleFailure(io, e, undefined, !!flags.json);
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
