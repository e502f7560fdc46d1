/**
 * The forward scope's proof (SPEC §6, issue 11): a host with two container
 * bridges (br-test, governed by source "test"; br-new, in no source) behind
 * it, under each foreign ruleset (Docker with iptables, Docker with
 * nftables, netavark, none) and on both backends. Every forwarded probe
 * (tcp, udp, icmp, IPv4 and IPv6; 240 a run) gets the verdict explain
 * predicts — no escapes, no false denials; the published port and traffic
 * between containers keep working; the unlisted detector counts exactly the
 * new flows from br-new; per-rule counters count exactly the probes each
 * rule decided; foreign rules are byte-identical after apply, rollback and
 * remove; a simulated Docker restart leaves enforcement intact (Docker keeps
 * DOCKER-USER's rules), while a DOCKER-USER flushed by another tool, or Docker
 * started after egress (its jumps above egress's in FORWARD), is drift in the
 * next `status` on iptables — with the side door measured open — until a
 * re-apply.
 *
 * Showing it can fail: the same probes against the same policy without its
 * forward scope escape (the last test of each shape; forward-escape is the
 * full negative control).
 */
import { describe, expect, test } from 'vitest';
import { realExecer } from '../../src/kernel/exec.js';
import { sysctl } from '../../src/kernel/netns.js';
import type { Outcome, Probe, ProbeResult } from '../../src/lab/probe.js';
import { parseFlow } from '../../src/sim/flow-parse.js';
import { indexedEvaluator } from '../../src/sim/indexed.js';
import type { Decision } from '../../src/sim/flow.js';
import type { Status } from '../../src/kernel/status.js';
import { ACCOUNTS, loadText } from '../helpers.js';
import { kernelDescribe, useRootGuard } from './harness.js';
import { resultOf } from '../json.js';
import {
  dockerRestart,
  egressIn,
  expectedLines,
  flowProbes,
  foreignHash,
  FOREIGN_SHAPES,
  useCli,
  useForwardWorld,
  FWD,
  outcomeLines,
  probeFrom,
  probeIntra,
  probePublished,
  WORLD_PORTS,
  type EgressInHost,
} from './forward-env.js';

const policy = (unlisted: 'warn' | 'deny', scope = true) => {
  const from = (x: string) => (scope ? `    from: ${x}\n` : '');
  return `version: 1
default: reject
${scope ? `forward:
  sources:
    test: { interfaces: ["br-test"], networks: [198.51.100.0/25, "2001:db8:c1::/64"] }
  unlisted: ${unlisted}
` : ''}allow:
  - name: web
    reason: the one service this host and its containers may reach
${from('[host, test]')}    to: [203.0.113.10, "2001:db8:ff::10"]
    ports: [tcp/443]
  - name: mirror
    reason: containers fetch packages
${from('[test]')}    to: [203.0.113.16/29, "2001:db8:ff::10:0/124"]
    ports: [tcp/80, tcp/443]
  - name: resolver
    reason: container DNS
${from('[test]')}    to: [203.0.113.53, "2001:db8:ff::53"]
    ports: [udp/53]
  - name: ping
    reason: reachability checks
${from('[test]')}    to: [203.0.113.0/26, "2001:db8:ff::/120"]
    icmp: [echo-request]
deny:
  - name: sink
    reason: never this address but for https
${from('[test]')}    to: [203.0.113.20, "2001:db8:ff::10:4"]
    except: { ports: [tcp/443] }
`;
};

/** Destinations around every rule's edges, in the world's pools (it answers on every address of them). */
const DSTS = [
  ...['10', '11', '16', '20', '23', '24', '53', '54', '63', '64', '99', '200'].map((n) => `203.0.113.${n}`),
  ...['10', '11', '10:0', '10:4', '10:f', '10:10', '53', '54', 'ff', '100', '99', 'c8'].map((n) => `2001:db8:ff::${n}`),
];
/** Every port the world answers on, and icmp: 12 × 2 × 5 = 120 probes a container. */
const PROBES = flowProbes(DSTS, { tcp: WORLD_PORTS.tcp, udp: WORLD_PORTS.udp });

const KERNEL: Record<Decision['verdict'], Outcome> = { accept: 'accepted', reject: 'rejected', drop: 'dropped' };

const x = realExecer();

/** What explain predicts for a probe from a container: forwarded from its address, in through its bridge, out through up0. */
async function predictions(text: string, ct: 'ct1' | 'ct9', probes: readonly Probe[]): Promise<Decision[]> {
  const l = await loadText(text);
  expect(l.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  const evaluate = indexedEvaluator(l.ir!);
  const me = FWD[ct];
  return probes.map((p) => {
    const v6 = p.dst.includes(':');
    const flow = parseFlow(
      { to: p.dst, ...(p.proto === 'icmp' ? { icmp: 'echo-request' } : { port: `${p.proto}/${p.port}` }), from: v6 ? me.v6 : me.v4, in: me.net.bridge, via: FWD.h.up },
      ACCOUNTS,
    );
    return evaluate(flow);
  });
}

/** Each probe's outcome beside what explain predicts, as lines, so a failure shows every disagreement at once. */
function disagreements(rs: readonly ProbeResult[], want: readonly Decision[]): string[] {
  return rs.flatMap((r, i) => {
    const w = KERNEL[want[i]!.verdict];
    const what = `${r.probe.proto}${r.probe.port !== undefined ? `/${r.probe.port}` : ''} ${r.probe.dst}`;
    return r.outcome === w ? [] : [`${what}: kernel ${r.outcome} (${r.detail}), explain ${w} by ${want[i]!.step} ${want[i]!.rules.map((x) => x.name).join(',')}`];
  });
}

async function status(eg: EgressInHost): Promise<Status> {
  const r = await eg.run(['status', '--json']);
  expect(r.code, r.stderr).toBe(0);
  return resultOf(r.stdout, 'status', r.code);
}

/** Forward counters of `status`, summed over families, by action and rule. */
function forwardCounts(s: Status): Map<string, number> {
  const out = new Map<string, number>();
  for (const c of s.counters) if (c.scope === 'forward' && c.action !== 'builtin') out.set(`${c.action} ${c.action === 'allow' || c.action === 'deny' ? c.rule : ''}`.trim(), (out.get(`${c.action} ${c.action === 'allow' || c.action === 'deny' ? c.rule : ''}`.trim()) ?? 0) + c.packets);
  return out;
}

/** The counts the kernel must show for probes explain decided so: one new packet per probe, counted by the rule that decided it (the first, for several). */
function expectedCounts(decisions: readonly Decision[]): Map<string, number> {
  const out = new Map<string, number>();
  const add = (k: string) => out.set(k, (out.get(k) ?? 0) + 1);
  for (const d of decisions) {
    if (d.step === 'allow' || d.step === 'deny') add(`${d.step} ${d.rules[0]!.name}`);
    else if (d.step === 'default') add('default');
    else if (d.step === 'unlisted') add('unlisted');
  }
  return out;
}

kernelDescribe('forward scope: forwarded traffic is governed like the host’s own (SPEC §6)', () => {
  useRootGuard(x);
  const cli = useCli('forward-proof');

  describe.each(FOREIGN_SHAPES)('foreign rules: %s', (shape) => {
    // A reject sends an ICMP error per denied UDP datagram and ping; the kernel rate-limits those per peer
    // (a burst of about 6, then one a second), and 120 probes at once would see most of them as silence.
    const world = useForwardWorld(x, shape, (w) => sysctl(x, w.ns.h, { 'net.ipv4.icmp_ratelimit': 0, 'net.ipv6.icmp.ratelimit': 0 }));

    test.each(['nft', 'iptables'] as const)(
      '%s: 240 forwarded probes agree with explain; published port, intra-bridge and the host keep working; counters exact; foreign rules byte-identical after apply, rollback, remove',
      async (backend) => {
        const w = world.w;
        const text = policy('warn');
        const [want1, want9] = await Promise.all([predictions(text, 'ct1', PROBES), predictions(text, 'ct9', PROBES)]);
        // The probes cover every step: allows, the deny and its except, the default, unlisted.
        const steps = new Set([...want1, ...want9].map((d) => d.step));
        expect([...steps].sort()).toEqual(['allow', 'default', 'deny', 'unlisted']);
        const before = await foreignHash(w);
        const eg = egressIn(w, cli.path);
        let removed = false;
        try {
          await eg.apply(text, backend);
          const zero = forwardCounts(await status(eg));
          const [ct1, ct9, intra, published] = await Promise.all([probeFrom(w, 'ct1', PROBES), probeFrom(w, 'ct9', PROBES), probeIntra(w), probePublished(w)]);
          expect(disagreements(ct1, want1)).toEqual([]);
          expect(disagreements(ct9, want9)).toEqual([]);
          // Not egress: between containers on the governed bridge, and replies of a published port.
          expect(outcomeLines(intra)).toEqual(expectedLines(intra, 'accepted'));
          expect(outcomeLines(published)).toEqual(expectedLines(published, w.published ? 'accepted' : 'rejected'));
          // Exact counts: every rule's forward counter moved by the probes it decided; unlisted by every new flow from br-new.
          const after = forwardCounts(await status(eg));
          const moved = new Map([...after].map(([k, v]) => [k, v - (zero.get(k) ?? 0)]).filter(([, v]) => v !== 0) as [string, number][]);
          expect(moved).toEqual(expectedCounts([...want1, ...want9]));
          expect(await foreignHash(w)).toEqual(before);
          // Another policy, then rollback: foreign rules untouched throughout, and ct9 is denied under `unlisted: deny`.
          await eg.apply(policy('deny'), backend);
          const denied = await probeFrom(w, 'ct9', PROBES.slice(0, 10));
          expect(outcomeLines(denied)).toEqual(expectedLines(denied, 'rejected'));
          expect(await foreignHash(w)).toEqual(before);
          const rb = await eg.run(['rollback']);
          expect(rb.code, rb.stderr).toBe(0);
          const back = await probeFrom(w, 'ct9', PROBES.slice(0, 10));
          expect(outcomeLines(back)).toEqual(expectedLines(back, 'accepted'));
          expect(await foreignHash(w)).toEqual(before);
          await eg.remove();
          removed = true;
          expect(await foreignHash(w)).toEqual(before);
        } finally {
          if (!removed) await eg.run(['remove']);
          eg.close();
        }
      },
      120_000,
    );

    test.each(['nft', 'iptables'] as const)(
      '%s: a simulated runtime restart leaves enforcement intact and no false drift; a DOCKER-USER flushed by another tool, or Docker started after egress, is drift in the next status, mended by re-apply or by egress-forward.service (_forward-jump)',
      async (backend) => {
        const w = world.w;
        const text = policy('warn');
        const probes = PROBES.filter((p) => p.dst === FWD.unlisted.v4 || p.dst === FWD.unlisted.v6 || p.dst === FWD.allowed.v4 || p.dst === FWD.allowed.v6);
        const want = await predictions(text, 'ct1', probes);
        const eg = egressIn(w, cli.path);
        try {
          await eg.apply(text, backend);
          expect((await status(eg)).drift).toBe(false);
          await dockerRestart(w);
          expect(disagreements(await probeFrom(w, 'ct1', probes), want)).toEqual([]);
          expect((await status(eg)).drift).toBe(false);
          if (shape === 'docker-iptables' && backend === 'iptables') {
            // A tool that "reverts" by clearing DOCKER-USER (harden-runner does) takes egress's jump with it.
            for (const t of ['iptables', 'ip6tables']) expect((await x.run(t, ['-F', 'DOCKER-USER'], { netns: w.ns.h })).code).toBe(0);
            const s = await status(eg);
            expect(s.drift).toBe(true);
            expect(s.forward?.drift.map((d) => `${d.family} ${d.kind}`).sort()).toEqual(['ipv4 missing-jump', 'ipv6 missing-jump']);
            // The side door is open until the next apply, which puts the jump back.
            const open = await probeFrom(w, 'ct1', probes);
            expect(disagreements(open, want).length).toBeGreaterThan(0);
            await eg.apply(text, backend);
            expect((await status(eg)).drift).toBe(false);
            expect(disagreements(await probeFrom(w, 'ct1', probes), want)).toEqual([]);

            // Docker started after egress: egress was applied while there was no DOCKER-USER (its jump went to the top of
            // FORWARD); Docker's start puts its own jumps above it, and DOCKER-FORWARD accepts the bridge first.
            const ipt = async (args: string[]) => {
              for (const t of ['iptables', 'ip6tables']) expect((await x.run(t, args, { netns: w.ns.h })).code, `${t} ${args.join(' ')}`).toBe(0);
            };
            await eg.remove();
            await ipt(['-D', 'FORWARD', '-j', 'DOCKER-USER']);
            await ipt(['-X', 'DOCKER-USER']);
            await eg.apply(text, backend);
            // Docker starts: DOCKER-USER made, every jump of Docker's (re)inserted at the top.
            await ipt(['-N', 'DOCKER-USER']);
            await ipt(['-I', 'FORWARD', '1', '-j', 'DOCKER-USER']);
            await dockerRestart(w);
            const late = await status(eg);
            expect(late.drift).toBe(true);
            expect(late.forward?.drift.map((d) => `${d.family} ${d.kind}`).sort()).toEqual(['ipv4 jump-in-forward', 'ipv6 jump-in-forward']);
            expect(disagreements(await probeFrom(w, 'ct1', probes), want).length).toBeGreaterThan(0);
            // What egress-forward.service runs once Docker is up (persist installs it): the jump goes into DOCKER-USER,
            // which Docker keeps first, and nothing else changes; a second run finds nothing to do.
            const moved = await eg.run(['_forward-jump']);
            expect(moved.stdout, moved.stderr).toMatch(/^egress: moved the forward jump back first \(ipv4 jump-in-forward, ipv6 jump-in-forward\)/);
            expect((await status(eg)).drift).toBe(false);
            expect(disagreements(await probeFrom(w, 'ct1', probes), want)).toEqual([]);
            expect((await eg.run(['_forward-jump'])).stdout).toBe('egress: the forward jump is where it belongs\n');
            await dockerRestart(w);
            expect((await status(eg)).drift).toBe(false);
          }
          await eg.remove();
        } finally {
          await eg.run(['remove']);
          eg.close();
        }
      },
      120_000,
    );

    test('the test can fail: without the forward scope the same probes escape', async () => {
      const w = world.w;
      const scoped = await predictions(policy('warn'), 'ct1', PROBES);
      const eg = egressIn(w, cli.path);
      try {
        await eg.apply(policy('warn', false), 'nft');
        const rs = await probeFrom(w, 'ct1', PROBES);
        const escapes = rs.filter((r, i) => scoped[i]!.verdict !== 'accept' && r.outcome === 'accepted');
        expect(escapes.length).toBeGreaterThan(40);
        expect(disagreements(rs, scoped).length).toBe(escapes.length);
        await eg.remove();
      } finally {
        await eg.run(['remove']);
        eg.close();
      }
    }, 120_000);
  });
});
