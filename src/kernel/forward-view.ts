/**
 * What plan, apply and status say about forwarded traffic (SPEC §6): the
 * side doors (interfaces the host forwards from that no source covers —
 * or, without a forward scope, at all), forwarding that is off while the
 * policy has forward rules, an eBPF datapath that bypasses netfilter, and on
 * iptables where the EGRESS-FWD jump is not where it belongs (Docker moved
 * or removed it). Read-only: it reads sysctls, links, routes and
 * `iptables-save`, and changes nothing.
 */
import { SourceFile } from '../diag/source.js';
import { parsePolicy } from '../policy/parse.js';
import type { Family } from '../policy/address.js';
import type { Unlisted } from '../policy/types.js';
import {
  driftLines,
  ebpfDatapath,
  ebpfDatapathLine,
  forwardJumpDrift,
  forwardingOffLine,
  inspectForwarding,
  sideDoorLines,
  sideDoors,
  type Drift,
  type EbpfDatapath,
  type InterfaceSource,
  type SideDoor,
} from './forward-host.js';
import { mustRun, type Where } from './where.js';

/** The policy's forward scope as the view needs it; undefined = the policy has none. */
export interface ForwardScope {
  sources: InterfaceSource[];
  unlisted: Unlisted;
}

export interface ForwardView {
  forwarding: Record<Family, boolean>;
  sideDoors: SideDoor[];
  ebpf: EbpfDatapath[];
  /** iptables only, with a forward scope: the EGRESS-FWD jump's drift. */
  drift: Drift[];
  /** The same as `warning:`/`info:` lines, for people. */
  lines: string[];
}

/** `saves`: the filter tables' `iptables-save` / `ip6tables-save` text when the caller has just read them (status). */
export async function forwardView(w: Where, scope: ForwardScope | undefined, backend: 'nft' | 'iptables' | undefined, saves?: Record<Family, string>): Promise<ForwardView> {
  let h: Awaited<ReturnType<typeof inspectForwarding>>;
  try {
    h = await inspectForwarding(w.execer, w.netns);
  } catch (e) {
    // What the host forwards is advice next to the command's real work: say it could not be read, never fail for it.
    const none = { ipv4: false, ipv6: false };
    return { forwarding: none, sideDoors: [], ebpf: [], drift: [], lines: [`warning: could not read what the host forwards (${(e as Error).message.split('\n')[0]}): side doors unknown`] };
  }
  const doors = sideDoors(h, scope?.sources ?? []);
  const drift =
    scope && backend === 'iptables'
      ? forwardJumpDrift(saves?.ipv4 ?? (await mustRun(w, ['iptables-save', '-t', 'filter'])), saves?.ipv6 ?? (await mustRun(w, ['ip6tables-save', '-t', 'filter'])))
      : [];
  const lines = [
    ...sideDoorLines(doors, scope?.unlisted),
    ...(scope ? [forwardingOffLine(h)].filter((x): x is string => x !== undefined) : []),
    ...[ebpfDatapathLine(h)].filter((x): x is string => x !== undefined),
    ...driftLines(drift),
  ];
  return { forwarding: h.forwarding, sideDoors: doors, ebpf: ebpfDatapath(h), drift, lines };
}

/** A checked policy's forward scope, as the view needs it. */
export function scopeOf(fwd: { sources: { name: string; interfaces: { name: string }[] }[]; unlisted: Unlisted } | undefined): ForwardScope | undefined {
  return fwd ? { sources: fwd.sources.map((s) => ({ name: s.name, interfaces: s.interfaces.map((i) => i.name) })), unlisted: fwd.unlisted } : undefined;
}

/** The forward scope of an applied policy's text, from its syntax alone (status reads what was applied, not what is on disk now). */
export function scopeOfText(policyFile: string, policyText: string): ForwardScope | undefined {
  const f = parsePolicy(new SourceFile(policyFile, policyText)).value?.forward;
  if (!f) return undefined;
  const unlisted = f.unlisted && ['warn', 'deny', 'accept'].includes(f.unlisted.value) ? (f.unlisted.value as Unlisted) : 'warn';
  return { sources: f.sources.map((s) => ({ name: s.name.value, interfaces: (s.interfaces ?? []).map((i) => i.value) })), unlisted };
}
