import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { askTcp, askUdp, decode, query } from '../dns/dns.testkit.js';
import { WORLD_DNS_SOURCE, type WorldZone } from './world-dns.js';

/** The world's DNS server, run as the lab runs it but on 127.0.0.1 (no namespace needed). */
let child: ChildProcess | undefined;
let port = 0;

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const p = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return p;
}

beforeAll(async () => {
  for (let tries = 0; tries < 5 && !child; tries++) {
    port = await freePort();
    const c = spawn(process.execPath, ['--input-type=module', '-e', WORLD_DNS_SOURCE], { stdio: ['pipe', 'pipe', 'inherit'] });
    const zone: WorldZone = {
      servers: [{ address: '127.0.0.1', port }],
      names: { 'rot.example.com': { a: ['198.51.100.1', '198.51.100.2', '198.51.100.3'], aaaa: ['2001:db8:d45::1', '2001:db8:d45::a:0:1'] } },
      other: { a: ['203.0.113.9'], aaaa: [] },
    };
    c.stdin!.write(JSON.stringify(zone) + '\n');
    const first = await new Promise<string>((r) => c.stdout!.once('data', (b: Buffer) => r(b.toString().trim())));
    if (first === 'ready') child = c;
    else c.kill();
  }
  expect(child).toBeDefined();
});

afterAll(() => {
  child?.stdin?.end();
});

const addresses = (b: Buffer) => (decode(b).answers ?? []).map((a) => (a as { data: string }).data);
const ttls = (b: Buffer) => (decode(b).answers ?? []).map((a) => (a as { ttl: number }).ttl);

describe("the world's DNS server", () => {
  test('rotates a name through its pool, two addresses an answer, TTL 0 and 1 in turn', async () => {
    const answers: string[][] = [];
    const t: number[][] = [];
    for (let i = 0; i < 3; i++) {
      const b = await askUdp(port, query('ROT.example.com'));
      answers.push(addresses(b));
      t.push(ttls(b));
    }
    expect(answers).toEqual([
      ['198.51.100.1', '198.51.100.2'],
      ['198.51.100.3', '198.51.100.1'],
      ['198.51.100.2', '198.51.100.3'],
    ]);
    expect(t).toEqual([[0, 0], [1, 1], [0, 0]]);
  });

  test('AAAA over TCP, in the same form the pool has; other names get the other pool; other types nothing', async () => {
    const [six] = await askTcp(port, [query('rot.example.com', 'AAAA')]);
    expect(new Set(addresses(six!))).toEqual(new Set(['2001:db8:d45::1', '2001:db8:d45::a:0:1']));
    expect(addresses(await askUdp(port, query('anything.example.net')))).toEqual(['203.0.113.9']);
    const txt = decode(await askUdp(port, query('rot.example.com', 'TXT')));
    expect([txt.answers, (txt as { rcode?: string }).rcode]).toEqual([[], 'NOERROR']);
  });
});
