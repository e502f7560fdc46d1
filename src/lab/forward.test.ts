import { describe, expect, test } from 'vitest';
import { irOf } from '../../test/helpers.js';
import { FORWARD_DEFAULT_RULE, FORWARD_RULE, FORWARD_UNLISTED_RULE, MAX_SOURCE_CONTAINERS, nameFromGlobs, placeContainers, planForward } from './forward.js';

async function place(body: string, taken: string[] = []) {
  const ir = await irOf(body);
  const plan = planForward(ir);
  const placed = placeContainers(plan, ir, taken);
  const lines = placed.probes.map((p) => `${p.probe.from!.source ?? '-'} ${p.probe.from!.src} ${p.probe.from!.in}: ${p.rule} ${p.why} ${p.probe.proto}${p.probe.port ? `/${p.probe.port}` : ''} ${p.probe.dst}`);
  return { ...placed, lines };
}

const DOCKER = 'forward:\n  sources:\n    docker: { interfaces: ["docker0", "br-*"], networks: [198.51.100.0/26, "2001:db8:d0c::/64"] }\n';

describe('nameFromGlobs', () => {
  test.each([
    [['br-*'], [], 'br-lab0'],
    [['docker0', 'br-*'], [], 'docker0'],
    [['docker0', 'br-*'], ['docker0'], 'br-lab0'],
    [['br-*'], ['br-lab0'], 'br-lab1'],
    [['*'], [], 'lab0'],
    [['abcdefghijkl*'], [], 'abcdefghijkl0'],
    [['abcdefghijklmno*'], [], 'abcdefghijklmno'],
    [['a:b*', 'lo'], [], undefined],
    [['..'], [], undefined],
  ])('%j (used %j) → %s', (globs, used, want) => {
    expect(nameFromGlobs(globs, new Set(['lo', ...used]))).toBe(want);
  });
});

describe('planForward and placeContainers', () => {
  test('one container per source on an interface its first glob (in sorted order) matches, one unlisted; addresses in its networks, away from probed ones', async () => {
    const p = await place(`${DOCKER}allow:\n  - name: reg\n    reason: r\n    from: [docker]\n    to: [192.0.2.10]\n    ports: [tcp/443]\n`, ['198.51.100.1']);
    expect(p.containers).toEqual([
      { source: 'docker', hostIf: 'br-lab0', addresses: { ipv4: '198.51.100.2', ipv6: '2001:db8:d0c::1' } },
      { hostIf: 'lab-unl0', addresses: { ipv4: '192.0.2.1', ipv6: '2001:db8::1' } },
    ]);
    expect(p.lines).toEqual([
      'docker 198.51.100.2 br-lab0: reg allow tcp/443 192.0.2.10',
      'docker 198.51.100.2 br-lab0: reg around tcp/443 192.0.2.9',
      'docker 198.51.100.2 br-lab0: reg around tcp/443 192.0.2.11',
      'docker 198.51.100.2 br-lab0: reg around tcp/442 192.0.2.10',
      'docker 198.51.100.2 br-lab0: reg around tcp/444 192.0.2.10',
      'docker 198.51.100.2 br-lab0: reg around udp/443 192.0.2.10',
      'docker 198.51.100.2 br-lab0: reg around icmp 192.0.2.10',
      `docker 198.51.100.2 br-lab0: ${FORWARD_DEFAULT_RULE} around tcp/443 203.0.113.254`,
      `docker 2001:db8:d0c::1 br-lab0: ${FORWARD_DEFAULT_RULE} around tcp/443 2001:db8:ffff:ffff:ffff:ffff:ffff:fffe`,
      '- 192.0.2.1 lab-unl0: reg unlisted tcp/443 192.0.2.10',
      `- 192.0.2.1 lab-unl0: ${FORWARD_UNLISTED_RULE} unlisted tcp/443 203.0.113.254`,
      `- 2001:db8::1 lab-unl0: ${FORWARD_UNLISTED_RULE} unlisted tcp/443 2001:db8:ffff:ffff:ffff:ffff:ffff:fffe`,
    ]);
  });

  test("a rule that does not govern a container's source, and the host's rules, are tried at their first point", async () => {
    const p = await place(
      'forward:\n  sources:\n    a: { interfaces: [a0] }\n    b: { interfaces: [b0] }\nallow:\n  - name: ra\n    reason: r\n    from: [a]\n    to: [192.0.2.10]\n    ports: [tcp/443, tcp/8443]\n  - name: h\n    reason: r\n    to: [192.0.2.20]\n    ports: [udp/123]\n',
    );
    expect(p.lines.filter((l) => l.startsWith('b ') && / (ra|h) /.test(l))).toEqual(['b 192.0.2.2 b0: ra around tcp/443 192.0.2.10', 'b 192.0.2.2 b0: h around udp/123 192.0.2.20']);
    expect(p.lines.filter((l) => l.startsWith('a ') && / h /.test(l))).toEqual(['a 192.0.2.1 a0: h around udp/123 192.0.2.20']);
    // Without networks: documentation addresses no rule names, one per container.
    expect(p.containers.map((c) => c.addresses)).toEqual([
      { ipv4: '192.0.2.1', ipv6: '2001:db8::1' },
      { ipv4: '192.0.2.2', ipv6: '2001:db8::2' },
      { ipv4: '192.0.2.3', ipv6: '2001:db8::3' },
    ]);
  });

  test('networks outside the documentation ranges are used as they are; a network of everything prefers a documentation address', async () => {
    const p = await place('forward:\n  sources:\n    docker: { interfaces: [docker0], networks: [172.17.0.0/16] }\n    any: { interfaces: [vm*], networks: [0.0.0.0/0] }\n    one: { networks: [10.0.0.7] }\n');
    expect(p.containers).toEqual([
      { source: 'docker', hostIf: 'docker0', addresses: { ipv4: '172.17.0.1' } },
      { source: 'any', hostIf: 'vmlab0', addresses: { ipv4: '192.0.2.1' } },
      { source: 'one', hostIf: 'lab-src0', addresses: { ipv4: '10.0.0.7' } },
      // Not in "one"'s network (any interface): unlisted in both families.
      { hostIf: 'lab-unl0', addresses: { ipv4: '192.0.2.2', ipv6: '2001:db8::1' } },
    ]);
  });

  test('the unlisted container stays out of every source; where a source covers everything it has no address, and says so', async () => {
    const p = await place('forward:\n  sources:\n    all: { networks: [0.0.0.0/0, "::/0"] }\n');
    expect(p.containers).toEqual([{ source: 'all', hostIf: 'lab-src0', addresses: { ipv4: '192.0.2.1', ipv6: '2001:db8::1' } }]);
    expect(p.notProbed).toEqual([
      { rule: FORWARD_RULE, what: 'the unlisted container over IPv4', why: 'no address left for its container' },
      { rule: FORWARD_RULE, what: 'the unlisted container over IPv6', why: 'no address left for its container' },
    ]);
    expect(p.lines.some((l) => l.startsWith('- '))).toBe(false);
  });

  test(`at most ${MAX_SOURCE_CONTAINERS} sources get a container`, async () => {
    const sources = Array.from({ length: MAX_SOURCE_CONTAINERS + 1 }, (_, i) => `    s${i}: { interfaces: [s${i}] }`).join('\n');
    const p = await place(`forward:\n  sources:\n${sources}\n`);
    expect(p.containers.filter((c) => c.source !== undefined)).toHaveLength(MAX_SOURCE_CONTAINERS);
    expect(p.notProbed).toEqual([{ rule: FORWARD_RULE, what: `source s${MAX_SOURCE_CONTAINERS}`, why: `at most ${MAX_SOURCE_CONTAINERS} sources are given a container` }]);
  });

  test('a deny and its except from a governed source; under dns.proxy udp/53 from containers is listed as not probed', async () => {
    const p = await place(`dns:\n  proxy: true\n${DOCKER}default: accept\ndeny:\n  - name: d\n    reason: r\n    from: [docker]\n    to: [192.0.2.0/24]\n    except: { to: [192.0.2.7] }\n`);
    expect(p.lines.filter((l) => l.startsWith('docker 198.51.100.1') && / d /.test(l))).toEqual([
      'docker 198.51.100.1 br-lab0: d deny tcp/443 192.0.2.0',
      'docker 198.51.100.1 br-lab0: d deny icmp 192.0.2.0',
      'docker 198.51.100.1 br-lab0: d deny tcp/443 192.0.2.255',
      'docker 198.51.100.1 br-lab0: d deny icmp 192.0.2.255',
      'docker 198.51.100.1 br-lab0: d except tcp/443 192.0.2.7',
    ]);
    expect(p.notProbed).toContainEqual({ rule: FORWARD_RULE, what: 'udp/53 from containers', why: expect.stringMatching(/dns\.proxy/) });
  });
});
