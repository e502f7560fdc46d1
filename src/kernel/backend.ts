/**
 * The two Linux backends behind one shape, so the life cycle does not care
 * which one it drives: read what egress owns, check, load, take out, and
 * have the kernel list a ruleset in its canonical form.
 */
import type { Artifact } from '../backends/types.js';
import { emptyLive } from '../plan/live-nft.js';
import type { LinuxBackend, LiveRuleset } from '../plan/types.js';
import type { Family } from '../policy/address.js';
import { canonicalIptables, checkIptables, loadIptables, readIptables, removeIptables } from './iptables.js';
import { canonicalNft, checkNft, loadNft, readNft, removeNft, type LoadFailure } from './nft.js';
import { onPath } from './netns.js';
import type { Where } from './where.js';

/** What is live for one backend, with what the loader needs to adapt a load to it. */
export interface Live {
  live: LiveRuleset;
  save?: Record<Family, string>;
}

/** Whether this backend's tools are installed; a missing one reads as "nothing live". */
export function backendInstalled(b: LinuxBackend): boolean {
  return b === 'nft' ? onPath('nft') : onPath('iptables-save') && onPath('ip6tables-save');
}

export async function readLive(w: Where, b: LinuxBackend): Promise<Live> {
  if (!backendInstalled(b)) return { live: emptyLive(b) };
  if (b === 'nft') return { live: await readNft(w) };
  const r = await readIptables(w);
  return { live: r.live, save: r.save };
}

export async function checkLoad(w: Where, b: LinuxBackend, art: Artifact, cur: Live): Promise<LoadFailure | undefined> {
  return b === 'nft' ? checkNft(w, art) : checkIptables(w, art, cur.save ?? { ipv4: '', ipv6: '' });
}

export async function load(w: Where, b: LinuxBackend, art: Artifact, cur: Live): Promise<LoadFailure | undefined> {
  return b === 'nft' ? loadNft(w, art) : loadIptables(w, art, cur.save ?? { ipv4: '', ipv6: '' });
}

export async function removeOwned(w: Where, b: LinuxBackend, cur: Live): Promise<void> {
  if (!cur.live.present) return;
  if (b === 'nft') await removeNft(w);
  else await removeIptables(w, cur.save ?? { ipv4: '', ipv6: '' });
}

export async function canonical(w: Where, b: LinuxBackend, art: Artifact): Promise<LiveRuleset> {
  return b === 'nft' ? canonicalNft(w, art) : canonicalIptables(w, art);
}

export function otherBackend(b: LinuxBackend): LinuxBackend {
  return b === 'nft' ? 'iptables' : 'nft';
}
