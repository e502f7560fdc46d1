/**
 * The side door, today: egress governs the output hook only, so what a host
 * routes for its containers (the forward hook) is not governed at all. This
 * is the negative control of the forward scope's proof (SPEC §6): under each
 * foreign ruleset (Docker with iptables, Docker with nftables, netavark, and
 * none), with an ordinary policy applied in the host by the real CLI, the
 * host's own connection to an unlisted destination is blocked while its
 * containers' connections to the same destination get through.
 *
 * The outcome the forward scope must change is named once,
 * FORWARDED_UNLISTED_TODAY: once `forward:` governs br-test, the same probes
 * from ct1 must be blocked; ct9 (br-new, listed in no source) is what
 * `unlisted:` decides.
 */
import { describe, expect, test } from 'vitest';
import { realExecer } from '../../src/kernel/exec.js';
import type { Outcome } from '../../src/lab/probe.js';
import { kernelDescribe, useRootGuard } from './harness.js';
import {
  dockerRestart,
  egressIn,
  expectedLines,
  flowProbes,
  foreignHash,
  foreignText,
  FOREIGN_SHAPES,
  useCli,
  useForwardWorld,
  FWD,
  outcomeLines,
  probeFrom,
  probeIntra,
  probePublished,
} from './forward-env.js';

/** What a forwarded connection to an unlisted destination does today. The forward scope's proof expects 'rejected'. */
const FORWARDED_UNLISTED_TODAY: Outcome = 'accepted';

const POLICY = `version: 1
default: reject
allow:
  - name: web
    reason: the one service this host may reach
    to: [${FWD.allowed.v4}, "${FWD.allowed.v6}"]
    ports: [tcp/443]
`;

const UNLISTED = flowProbes([FWD.unlisted.v4, FWD.unlisted.v6], { tcp: [80], udp: [53] });
const ALLOWED = flowProbes([FWD.allowed.v4, FWD.allowed.v6], { tcp: [443], icmp: false });

const x = realExecer();

kernelDescribe('forwarded traffic and an output-only egress (negative control of the forward scope)', () => {
  useRootGuard(x);
  const cli = useCli('forward-escape');

  describe.each(FOREIGN_SHAPES)('foreign rules: %s', (shape) => {
    const world = useForwardWorld(x, shape);

    test('without egress: containers on both bridges reach the world (tcp, udp, icmp, both families), the published port answers, ct1 reaches ct2, foreign rules read back the same', async () => {
      const w = world.w;
      const before = await foreignText(w);
      const [ct1, ct9, h, intra, published] = await Promise.all([
        probeFrom(w, 'ct1', [...UNLISTED, ...ALLOWED]),
        probeFrom(w, 'ct9', UNLISTED),
        probeFrom(w, 'h', UNLISTED),
        probeIntra(w),
        probePublished(w),
      ]);
      for (const rs of [ct1, ct9, h, intra]) expect(outcomeLines(rs)).toEqual(expectedLines(rs, 'accepted'));
      // Under 'none' nothing is published: h itself answers 8080 with a reset, so the probe would notice a missing DNAT.
      expect(outcomeLines(published)).toEqual(expectedLines(published, w.published ? 'accepted' : 'rejected'));
      expect(await foreignText(w)).toEqual(before);
      if (shape !== 'none') expect(Object.keys(before).length).toBeGreaterThan(0);
      // A simulated restart of the runtime recreates the same rules, and containers go on reaching the world.
      await dockerRestart(w);
      expect(await foreignText(w)).toEqual(before);
      const again = await probeFrom(w, 'ct1', UNLISTED);
      expect(outcomeLines(again)).toEqual(expectedLines(again, 'accepted'));
    });

    test.each(['nft', 'iptables'] as const)(
      'egress %s applied in the host (output hook only): the host is blocked, forwarded traffic from ct1 and ct9 ESCAPES TODAY; the published port still answers; foreign rules byte-identical after apply and remove',
      async (backend) => {
        const w = world.w;
        const before = await foreignHash(w);
        const eg = egressIn(w, cli.path);
        let removed = false;
        try {
          await eg.apply(POLICY, backend);
          const [hUnlisted, hAllowed, ct1Unlisted, ct1Allowed, ct9, intra, published] = await Promise.all([
            probeFrom(w, 'h', UNLISTED),
            probeFrom(w, 'h', ALLOWED),
            probeFrom(w, 'ct1', UNLISTED),
            probeFrom(w, 'ct1', ALLOWED),
            probeFrom(w, 'ct9', UNLISTED),
            probeIntra(w),
            probePublished(w),
          ]);
          // egress is live in the host: its own flows are governed.
          expect(outcomeLines(hUnlisted)).toEqual(expectedLines(hUnlisted, 'rejected'));
          expect(outcomeLines(hAllowed)).toEqual(expectedLines(hAllowed, 'accepted'));
          // The side door: the same destinations, routed for the containers, are not.
          expect(outcomeLines(ct1Unlisted)).toEqual(expectedLines(ct1Unlisted, FORWARDED_UNLISTED_TODAY));
          expect(outcomeLines(ct9)).toEqual(expectedLines(ct9, FORWARDED_UNLISTED_TODAY));
          // What the policy allows, and what is not egress at all, keeps working.
          for (const rs of [ct1Allowed, intra]) expect(outcomeLines(rs)).toEqual(expectedLines(rs, 'accepted'));
          expect(outcomeLines(published)).toEqual(expectedLines(published, w.published ? 'accepted' : 'rejected'));
          expect(await foreignHash(w)).toEqual(before);
          await eg.remove();
          removed = true;
          expect(await foreignHash(w)).toEqual(before);
        } finally {
          if (!removed) await eg.run(['remove']);
          eg.close();
        }
      },
      60_000,
    );

    // What the forward scope's drift check relies on (iptables backend): a restart keeps DOCKER-USER's rules and puts Docker's jumps back on top.
    if (shape === 'docker-iptables')
      test("dockerRestart: a jump put in DOCKER-USER survives, one put at the top of FORWARD ends up below Docker's two", async () => {
        const w = world.w;
        const before = await foreignHash(w);
        const tools = ['iptables', 'ip6tables'] as const;
        const sh = async (tool: string, args: string[]) => {
          const r = await x.run(tool, args, { netns: w.ns.h });
          expect(r.code, `${tool} ${args.join(' ')}: ${r.stderr}`).toBe(0);
          return r.stdout;
        };
        for (const t of tools) for (const a of [['-N', 'EGRESS-FWD'], ['-A', 'DOCKER-USER', '-j', 'EGRESS-FWD'], ['-I', 'FORWARD', '1', '-j', 'EGRESS-FWD']]) await sh(t, a);
        try {
          await dockerRestart(w);
          for (const t of tools) {
            expect(await sh(t, ['-S', 'FORWARD'])).toBe('-P FORWARD DROP\n-A FORWARD -j DOCKER-USER\n-A FORWARD -j DOCKER-FORWARD\n-A FORWARD -j EGRESS-FWD\n');
            expect(await sh(t, ['-S', 'DOCKER-USER'])).toBe('-N DOCKER-USER\n-A DOCKER-USER -j EGRESS-FWD\n');
          }
          expect(await foreignHash(w)).toEqual(before);
        } finally {
          for (const t of tools) for (const a of [['-D', 'FORWARD', '-j', 'EGRESS-FWD'], ['-D', 'DOCKER-USER', '-j', 'EGRESS-FWD'], ['-X', 'EGRESS-FWD']]) await x.run(t, a, { netns: w.ns.h });
        }
      });
  });
});
