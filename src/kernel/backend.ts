/**
 * The two Linux backends behind one shape, so the life cycle does not care
 * which one it drives: read what egress owns, check, load, take out, and
 * have the kernel list a ruleset in its canonical form.
 *
 * `LinuxKernel` is that shape as one value, the seam the life cycle takes
 * through its `Ctx`: `realKernel(w)` runs nft / iptables-restore through an
 * Execer; a fake can keep the rulesets in memory so the life
 * cycle's settle and interrupt cases run without root (knftables'
 * `Interface`, `realNFTables` and `Fake`).
 */
import type { Artifact } from '../backends/types.js';
import { emptyLive } from '../backends/live.js';
import type { LiveRuleset } from '../backends/live.js';
import type { LinuxTarget } from '../backends/types.js';
import type { Family } from '../policy/address.js';
import { canonicalIptables, checkIptables, loadIptables, readIptables, removeIptables } from './iptables.js';
import { canonicalNft, loadNftScript, overLive, readNft, removeNft, type LoadFailure } from './nft.js';
import { onPath } from './netns.js';
import type { Where } from './where.js';

/** What is live for one backend, with what the loader needs to adapt a load to it. */
export interface Live {
  live: LiveRuleset;
  save?: Record<Family, string>;
}

/** Whether this backend's tools are installed; a missing one reads as "nothing live". */
export function backendInstalled(b: LinuxTarget): boolean {
  return b === 'nft' ? onPath('nft') : onPath('iptables-save') && onPath('ip6tables-save');
}

/** Options of a read: `ruleText: false` leaves out nft's text listing (rules then read as rendered from the JSON; the fingerprint does not depend on it), one nft process fewer. */
export interface ReadOptions {
  ruleText?: boolean;
}

export async function readLive(w: Where, b: LinuxTarget, o: ReadOptions = {}): Promise<Live> {
  if (!backendInstalled(b)) return { live: emptyLive(b) };
  if (b === 'nft') return { live: await readNft(w, o.ruleText !== false) };
  const r = await readIptables(w);
  return { live: r.live, save: r.save };
}

export async function checkLoad(w: Where, b: LinuxTarget, art: Artifact, cur: Live): Promise<LoadFailure | undefined> {
  return b === 'nft' ? overLive(w, art, cur.live, true) : checkIptables(w, art, cur.save ?? { ipv4: '', ipv6: '' });
}

export async function load(w: Where, b: LinuxTarget, art: Artifact, cur: Live): Promise<LoadFailure | undefined> {
  return b === 'nft' ? overLive(w, art, cur.live, false) : loadIptables(w, art, cur.save ?? { ipv4: '', ipv6: '' });
}

export async function removeOwned(w: Where, b: LinuxTarget, cur: Live): Promise<void> {
  if (!cur.live.present) return;
  if (b === 'nft') await removeNft(w);
  else await removeIptables(w, cur.save ?? { ipv4: '', ipv6: '' });
}

export async function canonical(w: Where, b: LinuxTarget, art: Artifact): Promise<LiveRuleset> {
  return b === 'nft' ? canonicalNft(w, art) : canonicalIptables(w, art);
}

/** Everything the life cycle does to the kernel, per backend. */
export interface LinuxKernel {
  /** Whether this backend's tools are installed; a missing one reads as "nothing live". */
  installed(b: LinuxTarget): boolean;
  /** What egress owns live. */
  readLive(b: LinuxTarget, o?: ReadOptions): Promise<Live>;
  /** Would the kernel take `art` over `cur` now? Changes nothing. */
  checkLoad(b: LinuxTarget, art: Artifact, cur: Live): Promise<LoadFailure | undefined>;
  /** Load `art` over `cur`: one transaction (nft), one per family, IPv6 first (iptables). */
  load(b: LinuxTarget, art: Artifact, cur: Live): Promise<LoadFailure | undefined>;
  /** Take out what egress owns (nothing happens when `cur` shows nothing). */
  removeOwned(b: LinuxTarget, cur: Live): Promise<void>;
  /** `art` as the kernel lists it once loaded, without loading it here (a scratch namespace). */
  canonical(b: LinuxTarget, art: Artifact): Promise<LiveRuleset>;
  /** Run an nft script (refresh: `flush set` + `add element`) in one transaction; throws KernelError. */
  loadNftScript(script: string): Promise<void>;
}

/** The kernel reached through `w`: what egress runs in production. */
export function realKernel(w: Where): LinuxKernel {
  return {
    installed: backendInstalled,
    readLive: (b, o) => readLive(w, b, o),
    checkLoad: (b, art, cur) => checkLoad(w, b, art, cur),
    load: (b, art, cur) => load(w, b, art, cur),
    removeOwned: (b, cur) => removeOwned(w, b, cur),
    canonical: (b, art) => canonical(w, b, art),
    loadNftScript: (script) => loadNftScript(w, script),
  };
}

export function otherBackend(b: LinuxTarget): LinuxTarget {
  return b === 'nft' ? 'iptables' : 'nft';
}

/**
 * Load an artifact into `w` over whatever egress owns there now, exactly as
 * `apply` loads it (lab and the kernel suite use this, so what they prove is
 * the loader that ships). Undefined on success.
 */
export async function loadFresh(w: Where, b: LinuxTarget, art: Artifact): Promise<LoadFailure | undefined> {
  return load(w, b, art, await readLive(w, b));
}
