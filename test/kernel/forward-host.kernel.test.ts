/**
 * The forward scope's host inspection against the kernel: a host namespace
 * with the interfaces Docker, libvirt, podman, LXD and a CNI would make
 * (forward-host-env.ts) is read by `inspectForwarding`, and what
 * `sideDoors`, `suggestSources` and `ebpfDatapath` make of it is checked, as
 * is that it equals what they make of the captured unit fixtures. Then the
 * iptables jump contract: the captured `iptables-save` fixtures are what
 * this iptables prints, and a Docker start, a re-apply, a Docker restart and
 * a user's rule show up as drift in the save that follows each.
 */
import { afterAll, beforeAll, expect } from 'vitest';
import { realExecer, type Execer } from '../../src/kernel/exec.js';
import { ebpfDatapath, forwardingOff, forwardJumpDrift, forwardJumpPlace, inspectForwarding, sideDoors, suggestSources, type Drift } from '../../src/kernel/forward-host.js';
import { uniqueTag } from '../../src/kernel/netns.js';
import { mustRun, withScratchNetns } from '../../src/kernel/where.js';
import { kernelTest } from '../netns.js';
import { DOCKER_NET, fixtureHost, forwardHost, forwardingOn, IPTABLES_CASES, saves, type ForwardHost } from './forward-host-env.js';
import { kernelDescribe, useRootGuard } from './harness.js';

const names = (xs: { name: string }[]) => xs.map((x) => x.name);

kernelDescribe('forward scope: host inspection', () => {
  const x: Execer = realExecer();
  useRootGuard(x);
  let fh: ForwardHost | undefined;
  beforeAll(async () => {
    fh = await forwardHost(x, uniqueTag());
  }, 60_000);
  afterAll(async () => {
    await fh?.close();
  }, 60_000);

  kernelTest('forwarding off: forward rules would see nothing, and there is no side door', async () => {
    await forwardingOn(x, fh!.host, { ipv4: false, ipv6: false });
    const h = await inspectForwarding(x, fh!.host);
    expect(h.forwarding).toEqual({ ipv4: false, ipv6: false });
    expect(forwardingOff(h)).toBe(true);
    expect(sideDoors(h, [])).toEqual([]);
  });

  kernelTest('IPv4 only: side doors forward IPv4', async () => {
    await forwardingOn(x, fh!.host, { ipv4: true, ipv6: false });
    const h = await inspectForwarding(x, fh!.host);
    expect(h.forwarding).toEqual({ ipv4: true, ipv6: false });
    expect(forwardingOff(h)).toBe(false);
    expect(new Set(sideDoors(h, []).flatMap((d) => d.families))).toEqual(new Set(['ipv4']));
  });

  kernelTest('both families: uplinks, side doors, suggestions and the eBPF datapath, as from the captured fixtures', async () => {
    await forwardingOn(x, fh!.host, { ipv4: true, ipv6: true });
    const h = await inspectForwarding(x, fh!.host);
    expect(h.forwarding).toEqual({ ipv4: true, ipv6: true });
    expect(h.uplinks).toEqual({ ipv4: ['tun9', 'up0'], ipv6: ['up0'] });

    const doors = sideDoors(h, []);
    expect(names(doors)).toEqual(['docker0', DOCKER_NET, 'br-new', 'virbr0', 'podman0', 'lxdbr0', 'cni0', 'cali0123456789a', 'tap9', 'vxl9']);
    expect(doors.find((d) => d.name === 'br-new')).toEqual({
      name: 'br-new',
      kind: 'bridge',
      up: true,
      operstate: expect.any(String),
      addresses: ['198.51.100.129/25', '2001:db8:b::1/64'],
      ports: [],
      families: ['ipv4', 'ipv6'],
    });
    expect(doors.find((d) => d.name === 'docker0')!.ports).toEqual(['vethc0']);
    expect(doors.find((d) => d.name === 'tap9')).toMatchObject({ kind: 'tap', up: false });

    const suggested = suggestSources(h);
    expect(suggested).toEqual([
      { name: 'docker', interfaces: ['docker0', DOCKER_NET], networks: ['198.51.100.0/26', '198.51.100.64/26', '2001:db8:d0::/64'] },
      { name: 'podman', interfaces: ['podman*'], networks: ['203.0.113.32/28'] },
      { name: 'libvirt', interfaces: ['virbr*'], networks: ['203.0.113.0/28'] },
      { name: 'lxd', interfaces: ['lxdbr*'], networks: ['203.0.113.48/28'] },
      { name: 'pods', interfaces: ['cni0', 'cali*'], networks: ['203.0.113.16/28'] },
    ]);
    expect(names(sideDoors(h, suggested))).toEqual(['br-new', 'tap9', 'vxl9']);
    expect(names(sideDoors(h, [{ name: 'docker', interfaces: ['docker0', 'br-*'] }]))).not.toContain('br-new');
    expect(ebpfDatapath(h)).toEqual([{ kind: 'cilium', interfaces: expect.arrayContaining(['cilium_host', 'cilium_net']) }]);

    // The unit fixtures were captured from this topology: the same answers from them.
    const f = fixtureHost();
    expect(sideDoors(h, [])).toEqual(sideDoors(f, []).map((d) => ({ ...d, operstate: expect.any(String) })));
    expect(suggested).toEqual(suggestSources(f));
    expect(h.uplinks).toEqual(f.uplinks);
  });
});

kernelDescribe('forward scope: the iptables jump to EGRESS-FWD', () => {
  const x: Execer = realExecer();
  useRootGuard(x);

  /** A throwaway namespace for `fn` (the one plan lists rulesets in), deleted afterwards, also on failure. */
  const inFreshNetns = (fn: (ns: string) => Promise<void>) => withScratchNetns(x, (w) => fn(w.netns!));
  const where = (ns: string) => ({ execer: x, netns: ns });
  const restore = (ns: string, v4: string, v6: string, noflush = false) =>
    Promise.all([mustRun(where(ns), ['iptables-restore', ...(noflush ? ['--noflush'] : [])], v4), mustRun(where(ns), ['ip6tables-restore', ...(noflush ? ['--noflush'] : [])], v6)]);
  const save = async (ns: string): Promise<[string, string]> => [await mustRun(where(ns), ['iptables-save', '-t', 'filter']), await mustRun(where(ns), ['ip6tables-save', '-t', 'filter'])];
  /** The same iptables commands in both families (one --noflush commit each). */
  const both = (ns: string, ...lines: string[]) => {
    const text = ['*filter', ...lines, 'COMMIT', ''].join('\n');
    return restore(ns, text, text, true);
  };
  const kinds = (ds: Drift[]) => ds.map((d) => `${d.family} ${d.kind}`);

  kernelTest('the captured iptables-save fixtures are what this iptables prints: the same drift after a round trip', async () => {
    await inFreshNetns(async (ns) => {
      for (const c of IPTABLES_CASES) {
        const [s4, s6] = saves(c);
        await restore(ns, s4, s6);
        const live = await save(ns);
        expect(forwardJumpDrift(...live), c).toEqual(forwardJumpDrift(s4, s6));
        expect([forwardJumpPlace(live[0]), forwardJumpPlace(live[1])], c).toEqual([forwardJumpPlace(s4), forwardJumpPlace(s6)]);
      }
    });
  });

  kernelTest('Docker starts after apply, egress re-applies, Docker restarts, a user inserts a rule: drift in the next save each time', async () => {
    await inFreshNetns(async (ns) => {
      await restore(ns, ...saves('plain-ok'));
      expect(forwardJumpDrift(...(await save(ns)))).toEqual([]);

      // Docker 28/29 starting: its chains, FORWARD policy DROP, its jumps inserted at the top of FORWARD.
      await both(ns, ':FORWARD DROP [0:0]', '-N DOCKER-USER', '-N DOCKER-FORWARD', '-I FORWARD 1 -j DOCKER-FORWARD', '-I FORWARD 1 -j DOCKER-USER');
      let live = await save(ns);
      expect(kinds(forwardJumpDrift(...live))).toEqual(['ipv4 jump-in-forward', 'ipv6 jump-in-forward']);
      expect(forwardJumpPlace(live[0])).toEqual({ chain: 'DOCKER-USER' });

      // Re-apply moves the jump where the contract puts it.
      await both(ns, '-D FORWARD -j EGRESS-FWD', '-I DOCKER-USER 1 -j EGRESS-FWD');
      expect(forwardJumpDrift(...(await save(ns)))).toEqual([]);

      // Docker restarting deletes and re-inserts its own jumps; ours in DOCKER-USER stays first.
      await both(ns, '-D FORWARD -j DOCKER-USER', '-D FORWARD -j DOCKER-FORWARD', '-I FORWARD 1 -j DOCKER-FORWARD', '-I FORWARD 1 -j DOCKER-USER');
      expect(forwardJumpDrift(...(await save(ns)))).toEqual([]);

      // A user's rule inserted at the top of DOCKER-USER, in IPv4 only.
      await mustRun(where(ns), ['iptables', '-I', 'DOCKER-USER', '1', '-i', 'up0', '-j', 'ACCEPT']);
      live = await save(ns);
      expect(forwardJumpDrift(...live)).toEqual([
        { family: 'ipv4', severity: 'warning', kind: 'jump-not-first', chain: 'EGRESS-FWD', in: 'DOCKER-USER', position: 2, before: ['-A DOCKER-USER -i up0 -j ACCEPT'] },
      ]);
    });
  });
});
