/**
 * Re-applying and removing the iptables ruleset idempotently.
 *
 * A section loaded with `--noflush` re-declares and flushes every chain it
 * owns, so loading it twice leaves the same chains. The OUTPUT jump is the
 * one line that cannot be made idempotent inside iptables-restore: `-A`/`-I`
 * add a copy on every load, and `-D OUTPUT -j EGRESS` aborts the whole load
 * when there is no jump yet (restore has no conditional). So apply reads the
 * live table first (`iptables-save -t filter`, read by parse-live.ts), and `iptablesReapply` keeps
 * the jump line only when no jump is live, deletes surplus jumps, and deletes
 * chains of a previous policy that this one no longer has. Pure functions:
 * kernel/ runs the commands.
 */
import { EGRESS_CHAIN, FORWARD_CHAIN, FORWARD_JUMP, OUTPUT_JUMP } from './emit.js';
import type { IptablesLive } from './parse-live.js';

function declared(section: string): Set<string> {
  const out = new Set<string>();
  for (const line of section.split('\n')) {
    const m = /^:(\S+) /.exec(line);
    if (m) out.add(m[1]!);
  }
  return out;
}

/**
 * One emitted section (see `splitIptables`), adapted to the live table so that
 * loading it with `--noflush` leaves exactly one jump and only this policy's
 * chains, however often it is applied.
 */
export function iptablesReapply(section: string, live: IptablesLive): string {
  const want = declared(section);
  const extra: string[] = [];
  for (let i = 1; i < live.jumps; i++) extra.push(`-D OUTPUT -j ${EGRESS_CHAIN}`);
  // The forward jump belongs first in DOCKER-USER where Docker made that chain (Docker keeps it first in FORWARD),
  // else first in FORWARD. One jump in the right place stays; any other is taken out, and the right one put in.
  const jumpChain = live.dockerUser ? 'DOCKER-USER' : 'FORWARD';
  const jumps = live.forwardJumps ?? [];
  const wantsForward = section.split('\n').includes(FORWARD_JUMP);
  const placed = jumps.length === 1 && jumps[0]!.chain === jumpChain && jumps[0]!.position === 1;
  const forwardJump = wantsForward && !placed ? `-I ${jumpChain} 1 -j ${FORWARD_CHAIN}` : undefined;
  const dropJumps = wantsForward && placed ? [] : jumps.map((j) => `-D ${j.chain} -j ${FORWARD_CHAIN}`);
  // EGRESS was flushed earlier in this same transaction, so nothing refers to a stale chain any more.
  // Jumps to a chain that goes must go first.
  const stale = live.chains.filter((c) => !want.has(c));
  extra.push(...(stale.includes(FORWARD_CHAIN) ? dropJumps : []));
  for (const c of stale) extra.push(`-F ${c}`);
  for (const c of stale) extra.push(`-X ${c}`);
  const out: string[] = [];
  for (const line of section.replace(/\n$/, '').split('\n')) {
    if (line === OUTPUT_JUMP && live.jumps > 0) continue;
    if (line === FORWARD_JUMP) {
      // Deleting a misplaced jump before inserting keeps exactly one.
      out.push(...dropJumps);
      if (forwardJump) out.push(forwardJump);
      continue;
    }
    if (line === 'COMMIT') out.push(...extra);
    out.push(line);
  }
  return out.join('\n') + '\n';
}

/** A restore section (for `--noflush`) that takes every rule and chain of egress out of one family's filter table. */
export function iptablesRemove(live: IptablesLive): string {
  const lines = ['*filter'];
  for (let i = 0; i < live.jumps; i++) lines.push(`-D OUTPUT -j ${EGRESS_CHAIN}`);
  for (const j of live.forwardJumps ?? []) lines.push(`-D ${j.chain} -j ${FORWARD_CHAIN}`);
  for (const c of live.chains) lines.push(`-F ${c}`);
  for (const c of live.chains) lines.push(`-X ${c}`);
  lines.push('COMMIT');
  return lines.join('\n') + '\n';
}
