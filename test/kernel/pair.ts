/**
 * Two namespaces joined by a veth pair, documentation addresses only: a
 * server namespace whose TCP echo server listens on every address, and
 * client namespaces of their own (connection tracking, once used in a
 * namespace, stays: a test that needs it unused takes a fresh client).
 */
import { afterAll, beforeAll, expect } from 'vitest';
import { realExecer } from '../../src/kernel/exec.js';
import { uniqueTag } from '../../src/kernel/netns.js';
import { useRootGuard } from './harness.js';
import type { Execer, Started } from '../../src/kernel/exec.js';
import { createNetns, ifName, ipBatch, netnsName, sysctl } from '../../src/kernel/netns.js';

export const ECHO_PORT = 2222;
const SERVER = `
const net = require('node:net');
const s = net.createServer((c) => { c.on('error', () => {}); c.setEncoding('utf8'); c.on('data', (d) => c.write(d)); });
s.listen({ port: ${ECHO_PORT}, host: '::', ipv6Only: false }, () => console.log('ready'));
`;

/** A program that connects to both addresses at once and prints `new v4 connected` or `new v4 ECODE`, per family. */
export const connectOnce = (v4: string, v6: string) => `
const net = require('node:net');
let left = 2;
for (const [fam, host] of [['v4', '${v4}'], ['v6', '${v6}']]) {
  const c = net.connect({ host, port: ${ECHO_PORT} }, () => { console.log('new ' + fam + ' connected'); c.destroy(); if (!--left) process.exit(0); });
  c.on('error', (e) => { console.log('new ' + fam + ' ' + e.code); if (!--left) process.exit(0); });
}
`;

export interface Pair {
  srv: string;
  /** Another client namespace, `k` (0–99) telling it apart; its server addresses are `v4(1)`/`v6(1)`, its own `v4(2)`/`v6(2)`. */
  client(k: number): Promise<{ cli: string; v4: (n: number) => string; v6: (n: number) => string }>;
  close(): Promise<void>;
}

export async function echoPair(x: Execer, tag: string): Promise<Pair> {
  const srv = netnsName(tag, 'srv');
  const dels: (() => Promise<void>)[] = [await createNetns(x, srv)];
  let server: Started | undefined;
  const close = async () => {
    await server?.stop();
    for (const d of dels.reverse()) await d();
  };
  try {
    await sysctl(x, srv, { 'net.ipv6.conf.all.accept_dad': 0, 'net.ipv6.conf.default.accept_dad': 0 });
    await ipBatch(x, srv, ['link set lo up']);
    server = x.start(process.execPath, ['-e', SERVER], { netns: srv });
    expect(await server.nextLine()).toBe('ready');
  } catch (e) {
    await close();
    throw e;
  }
  return {
    srv,
    close,
    async client(k) {
      const cli = netnsName(tag, `c${k}`);
      dels.push(await createNetns(x, cli));
      const [a, b] = [ifName(tag, `a${k}`), ifName(tag, `b${k}`)];
      const v4 = (n: number) => `192.0.2.${(k % 2) * 128 + Math.floor(k / 2) * 4 + n}`;
      const v6 = (n: number) => `2001:db8:0:${k.toString(16)}::${n}`;
      await ipBatch(x, undefined, [`link add ${a} netns ${srv} type veth peer name ${b} netns ${cli}`]);
      await sysctl(x, cli, { 'net.ipv6.conf.all.accept_dad': 0, 'net.ipv6.conf.default.accept_dad': 0 });
      await ipBatch(x, srv, [`addr add ${v4(1)}/30 dev ${a}`, `addr add ${v6(1)}/64 dev ${a} nodad`, `link set ${a} up`]);
      await ipBatch(x, cli, [`addr add ${v4(2)}/30 dev ${b}`, `addr add ${v6(2)}/64 dev ${b} nodad`, `link set ${b} up`, 'link set lo up']);
      return { cli, v4, v6 };
    },
  };
}

/** In a `kernelDescribe` body: the root guard, and an echo pair for the file (made before, removed after its tests); the client of each backend's case. */
export function usePair(): { x: Execer; client(k: number): ReturnType<Pair['client']> } {
  const x = realExecer();
  useRootGuard(x);
  let pair: Pair | undefined;
  beforeAll(async () => {
    pair = await echoPair(x, uniqueTag());
  }, 60_000);
  afterAll(async () => {
    await pair?.close();
  }, 60_000);
  return { x, client: (k) => pair!.client(k) };
}

/** Each Linux backend with the client namespace number its case uses. */
export const BACKEND_CASES = [
  ['nft', 0],
  ['iptables', 1],
] as const;
