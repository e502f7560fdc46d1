/**
 * The first apply on a host keeps every open session alive (issue 12).
 *
 * Before any ruleset uses connection tracking in a network namespace, the
 * kernel tracks nothing there. A TCP connection opened then (an SSH session
 * an operator runs `egress apply` from) has no conntrack entry; the first
 * packet it sends once the ruleset is live is picked up mid-stream and is
 * `ct state new`, not established: the default verdict reset the session.
 * The `established` builtin also admits such a packet (ACK without SYN, which
 * only an existing connection sends).
 *
 * Two namespaces joined by a veth pair, documentation addresses only: a
 * server that echoes lines, and a client that connects over IPv4 and IPv6
 * BEFORE the ruleset is loaded, then speaks first after it.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { compilePolicy } from '../../src/index.js';
import type { Started } from '../../src/kernel/exec.js';
import { realExecer } from '../../src/kernel/exec.js';
import { createNetns, ifName, ipBatch, netnsName, sysctl, uniqueTag } from '../../src/kernel/netns.js';
import { loadText } from '../helpers.js';
import { kernelDescribe, loadInto, useRootGuard } from './harness.js';

const PORT = 2222;
const SERVER = `
const net = require('node:net');
const s = net.createServer((c) => { c.on('error', () => {}); c.setEncoding('utf8'); c.on('data', (d) => c.write(d)); });
s.listen({ port: ${PORT}, host: '::', ipv6Only: false }, () => console.log('ready'));
`;
const client = (v4: string, v6: string) => `
const net = require('node:net');
const readline = require('node:readline');
const socks = {};
let open = 0;
for (const [fam, host] of [['v4', '${v4}'], ['v6', '${v6}']]) {
  const c = net.connect({ host, port: ${PORT} }, () => { socks[fam] = c; if (++open === 2) console.log('connected'); });
  c.setEncoding('utf8');
  c.on('error', (e) => console.log('error ' + fam + ' ' + e.code));
  c.on('data', (d) => console.log('echo ' + fam + ' ' + d.trim()));
}
readline.createInterface({ input: process.stdin }).on('line', (l) => { for (const c of Object.values(socks)) c.write(l + '\\n'); });
`;
const fresh = (v4: string, v6: string) => `
const net = require('node:net');
let left = 2;
for (const [fam, host] of [['v4', '${v4}'], ['v6', '${v6}']]) {
  const c = net.connect({ host, port: ${PORT} }, () => { console.log('new ' + fam + ' connected'); c.destroy(); if (!--left) process.exit(0); });
  c.on('error', (e) => { console.log('new ' + fam + ' ' + e.code); if (!--left) process.exit(0); });
}
`;

/** The policy of a host whose egress does not include the server: only its own session should survive. */
const POLICY = 'version: 1\ndefault: reject\nallow:\n  - { name: web, reason: r, to: [198.51.100.1, "2001:db8:1::1"], ports: [tcp/443] }\n';

kernelDescribe('the first apply keeps sessions opened before connection tracking', () => {
  useRootGuard();
  const x = realExecer();
  const tag = uniqueTag();
  const srv = netnsName(tag, 'srv');
  const dels: (() => Promise<void>)[] = [];
  const started: Started[] = [];

  beforeAll(async () => {
    dels.push(await createNetns(x, srv));
    await sysctl(x, srv, { 'net.ipv6.conf.all.accept_dad': 0, 'net.ipv6.conf.default.accept_dad': 0 });
    await ipBatch(x, srv, ['link set lo up']);
    const server = x.start(process.execPath, ['-e', SERVER], { netns: srv });
    started.push(server);
    expect(await server.nextLine()).toBe('ready');
  }, 60_000);

  afterAll(async () => {
    for (const s of started) await s.stop();
    for (const d of dels.reverse()) await d();
  }, 60_000);

  // A client namespace of its own per backend: connection tracking, once used in a namespace, stays.
  test.each([
    ['nft', 0],
    ['iptables', 1],
  ] as const)('%s: a session open before the first apply keeps working when the host speaks first; a new connection is refused', async (target, k) => {
    const cli = netnsName(tag, `c${k}`);
    dels.push(await createNetns(x, cli));
    const [a, b] = [ifName(tag, `a${k}`), ifName(tag, `b${k}`)];
    const v4 = (n: number) => `192.0.2.${k * 128 + n}`;
    const v6 = (n: number) => `2001:db8:0:${k}::${n}`;
    await ipBatch(x, undefined, [`link add ${a} netns ${srv} type veth peer name ${b} netns ${cli}`]);
    await sysctl(x, cli, { 'net.ipv6.conf.all.accept_dad': 0, 'net.ipv6.conf.default.accept_dad': 0 });
    await ipBatch(x, srv, [`addr add ${v4(1)}/25 dev ${a}`, `addr add ${v6(1)}/64 dev ${a} nodad`, `link set ${a} up`]);
    await ipBatch(x, cli, [`addr add ${v4(2)}/25 dev ${b}`, `addr add ${v6(2)}/64 dev ${b} nodad`, `link set ${b} up`, 'link set lo up']);

    const l = await loadText(POLICY);
    expect(l.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    const art = compilePolicy(l.ir!, target).value!;
    // Nothing loaded in the client's namespace yet: nothing tracks its connections.
    const c = x.start(process.execPath, ['-e', client(v4(1), v6(1))], { netns: cli });
    started.push(c);
    try {
      expect(await c.nextLine()).toBe('connected');
      await loadInto(x, cli, target, art.text);
      c.write('after apply\n');
      const lines = [await c.nextLine(), await c.nextLine()].sort();
      expect(lines).toEqual(['echo v4 after apply', 'echo v6 after apply']);
      // The ruleset is live: a new connection to the same server is refused by the default.
      const f = await x.run(process.execPath, ['-e', fresh(v4(1), v6(1))], { netns: cli, timeoutMs: 30_000 });
      expect(f.stdout.trim().split('\n').sort()).toEqual(['new v4 ECONNREFUSED', 'new v6 ECONNREFUSED']);
    } finally {
      await c.stop();
    }
  }, 60_000);
});
