/**
 * `iptables-save -c -t filter` and `ip6tables-save -c -t filter` →
 * LiveRuleset. Pure: kernel/iptables.ts runs the commands.
 *
 * Only what egress owns is read: the chains named `EGRESS` or `EGRESS-…`
 * (as `ipv4:EGRESS`, `ipv6:EGRESS-web`, …) and the number of
 * `-A OUTPUT -j EGRESS` jumps. A rule's key is its save line without the
 * `[packets:bytes]` prefix; the counts go to `packets`/`bytes`.
 */
import type { Family } from '../../policy/address.js';
import { emptyLive, type LiveRule, type LiveRuleset } from '../live.js';

/** What egress owns in one family's filter table right now (what a re-apply or a removal must adapt to). */
export interface IptablesLive {
  /** How many `-A OUTPUT -j EGRESS` rules are live (1 when healthy). */
  jumps: number;
  /** Live chains named `EGRESS` or `EGRESS-…`. */
  chains: string[];
  /** `-j EGRESS-FWD` jumps: chain and 1-based position (absent = none). */
  forwardJumps?: { chain: string; position: number }[];
  /** Whether DOCKER-USER exists. */
  dockerUser?: boolean;
}

const OWNED = /^EGRESS(?:-.*)?$/;
const JUMP = /^-A OUTPUT -j EGRESS$/;
const FORWARD_JUMP_RE = /^-A (FORWARD|DOCKER-USER) -j EGRESS-FWD$/;

/** Both families' save outputs; undefined = that family's tool printed nothing (no filter table). */
export function readIptablesSaves(save: Record<Family, string | undefined>): LiveRuleset {
  const live = emptyLive('iptables');
  live.jumps = { ipv4: 0, ipv6: 0 };
  live.forwardJumps = { ipv4: [], ipv6: [] };
  live.dockerUser = { ipv4: false, ipv6: false };
  for (const f of ['ipv4', 'ipv6'] as const) {
    let inFilter = false;
    const position = new Map<string, number>();
    for (const raw of (save[f] ?? '').split('\n')) {
      const line = raw.trimEnd();
      if (line.startsWith('*')) inFilter = line === '*filter';
      if (!inFilter) continue;
      const decl = /^:(\S+) /.exec(line);
      if (decl?.[1] === 'DOCKER-USER') live.dockerUser[f] = true;
      const appended = /^(?:\[\d+:\d+\] )?(-A (\S+)(?: .*)?)$/.exec(line);
      if (appended) {
        const n = (position.get(appended[2]!) ?? 0) + 1;
        position.set(appended[2]!, n);
        if (FORWARD_JUMP_RE.test(appended[1]!)) {
          live.forwardJumps[f].push({ chain: appended[2]!, position: n });
          live.present = true;
          continue;
        }
      }
      if (decl && OWNED.test(decl[1]!)) {
        live.present = true;
        if (!live.chains.has(`${f}:${decl[1]}`)) live.chains.set(`${f}:${decl[1]}`, []);
        continue;
      }
      const m = /^(?:\[(\d+):(\d+)\] )?(-A (\S+)(?: .*)?)$/.exec(line);
      if (!m) continue;
      const [, p, b, rule, chain] = m;
      if (chain === 'OUTPUT' && JUMP.test(rule!)) {
        live.jumps[f]++;
        live.present = true;
        continue;
      }
      if (!OWNED.test(chain!)) continue;
      const key = `${f}:${chain}`;
      const list = live.chains.get(key) ?? [];
      const comment = /-m comment --comment ("(?:[^"\\]|\\.)*"|\S+)/.exec(rule!)?.[1];
      const r: LiveRule = { key: rule!, text: rule!, ...(comment ? { comment: unquote(comment) } : {}) };
      if (p !== undefined) {
        r.packets = Number(p);
        r.bytes = Number(b);
      }
      list.push(r);
      live.chains.set(key, list);
    }
  }
  return live;
}

function unquote(s: string): string {
  return s.startsWith('"') ? s.slice(1, -1).replace(/\\(.)/g, '$1') : s;
}

/** One family's owned chains and jumps, from a parsed ruleset. */
export function ownedIn(live: LiveRuleset, f: Family): IptablesLive {
  const chains = [...live.chains.keys()].filter((k) => k.startsWith(`${f}:`)).map((k) => k.slice(f.length + 1));
  const forwardJumps = live.forwardJumps?.[f] ?? [];
  return { jumps: live.jumps?.[f] ?? 0, chains, ...(forwardJumps.length ? { forwardJumps } : {}), ...(live.dockerUser?.[f] ? { dockerUser: true } : {}) };
}

/** The owned state of one family's `iptables-save -t filter` (or `ip6tables-save`) output. */
export function readIptablesLive(save: string): IptablesLive {
  return ownedIn(readIptablesSaves({ ipv4: save, ipv6: undefined }), 'ipv4');
}
