/**
 * The world's DNS server, for policies with `dns.proxy`: the upstream the
 * host namespace's forwarder asks. It runs inside the world namespace and
 * answers on the lab's upstream endpoints (192.0.2.53 and 2001:db8::53, port
 * 53, unless the policy's `dns.upstream` names documentation addresses),
 * UDP and TCP.
 *
 * Its zone is what the lab planned (names.ts): per name, a pool of handed-out
 * A and AAAA addresses; every query for the name gets the next two of its
 * pool (rotating), with TTL 0 or 1 in turn, as a CDN does. A name the zone
 * does not list gets an address from the `other` pool. Other query types get
 * an empty answer. So an address is only ever answered for one name, and
 * addresses the lab keeps out of every pool are never answered at all.
 *
 * Kept as source text and run with `node --input-type=module -e` (like the
 * world listener), with no dependency: the answers are built here, by hand,
 * independently of the forwarder's own src/dns/wire.ts.
 *
 * Protocol: the first input line is the zone as JSON (`WorldZone`); it binds
 * and prints `ready` (or `error <message>`). It exits when its standard input
 * closes, so it never outlives the lab.
 */

/** One name the world's DNS server answers, and the addresses it hands out for it. */
export interface ZoneEntry {
  a: string[];
  aaaa: string[];
}

export interface WorldZone {
  /** Where it listens (UDP and TCP). */
  servers: { address: string; port: number }[];
  /** Lowercase names without the trailing dot. */
  names: Record<string, ZoneEntry>;
  /** What any other name gets. */
  other: ZoneEntry;
}

/** How many addresses one answer holds (fewer when the pool is smaller). */
export const ANSWER_SIZE = 2;

export const WORLD_DNS_SOURCE = String.raw`
import dgram from 'node:dgram';
import net from 'node:net';
import readline from 'node:readline';

const ANSWER_SIZE = ${ANSWER_SIZE};
let zone;
const turn = new Map();

function readName(msg, off) {
  const labels = [];
  for (let hops = 0; hops < 128; hops++) {
    const len = msg[off];
    if (len === undefined || len > 63) return undefined;
    off++;
    if (len === 0) return { name: labels.join('.').toLowerCase(), end: off };
    labels.push(msg.subarray(off, off + len).toString('latin1'));
    off += len;
  }
  return undefined;
}

function rdata(type, address) {
  if (type === 1) return Buffer.from(address.split('.').map(Number));
  // IPv6: expand "::" and write the eight groups.
  const [head, tail] = address.includes('::') ? address.split('::') : [address, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => b.writeUInt16BE(parseInt(g || '0', 16), i * 2));
  return b;
}

function answer(msg) {
  if (msg.length < 12 || msg.readUInt16BE(4) !== 1 || (msg[2] & 0x80)) return undefined;
  const q = readName(msg, 12);
  if (!q || q.end + 4 > msg.length) return undefined;
  const type = msg.readUInt16BE(q.end);
  const question = msg.subarray(12, q.end + 4);
  const entry = zone.names[q.name] ?? zone.other;
  const pool = type === 1 ? entry.a : type === 28 ? entry.aaaa : [];
  const key = q.name + ' ' + type;
  const n = turn.get(key) ?? 0;
  turn.set(key, n + 1);
  const picked = [];
  for (let i = 0; i < Math.min(ANSWER_SIZE, pool.length); i++) picked.push(pool[(n * ANSWER_SIZE + i) % pool.length]);
  const head = Buffer.alloc(12);
  head.writeUInt16BE(msg.readUInt16BE(0), 0);
  head.writeUInt16BE(0x8400 | ((msg[2] & 0x01) << 8), 2); // QR, AA, RD copied
  head.writeUInt16BE(1, 4);
  head.writeUInt16BE(picked.length, 6);
  const rrs = picked.map((a) => {
    const d = rdata(type, a);
    const rr = Buffer.alloc(12);
    rr.writeUInt16BE(0xc00c, 0);
    rr.writeUInt16BE(type, 2);
    rr.writeUInt16BE(1, 4);
    rr.writeUInt32BE(n % 2, 6); // TTL 0, 1, 0, …
    rr.writeUInt16BE(d.length, 10);
    return Buffer.concat([rr, d]);
  });
  return Buffer.concat([head, question, ...rrs]);
}

async function serve({ address, port }) {
  const u = dgram.createSocket({ type: net.isIPv6(address) ? 'udp6' : 'udp4', reuseAddr: true });
  u.on('message', (m, r) => {
    const b = answer(m);
    if (b) u.send(b, r.port, r.address);
  });
  await new Promise((res, rej) => {
    u.once('error', rej);
    u.bind({ port, address, exclusive: false }, () => { u.removeListener('error', rej); u.on('error', () => {}); res(); });
  });
  const t = net.createServer((c) => {
    c.on('error', () => {});
    let buf = Buffer.alloc(0);
    c.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const b = answer(buf.subarray(2, 2 + buf.readUInt16BE(0)));
        buf = buf.subarray(2 + buf.readUInt16BE(0));
        if (!b) continue;
        const len = Buffer.alloc(2);
        len.writeUInt16BE(b.length);
        c.write(Buffer.concat([len, b]));
      }
    });
  });
  await new Promise((res, rej) => {
    t.once('error', rej);
    t.listen({ port, host: address, backlog: 1024 }, () => res());
  });
}

const rl = readline.createInterface({ input: process.stdin });
let started = false;
rl.on('line', async (line) => {
  if (started || !line.trim()) return;
  started = true;
  try {
    zone = JSON.parse(line);
    for (const s of zone.servers) await serve(s);
    process.stdout.write('ready\n');
  } catch (e) {
    process.stdout.write('error ' + String(e && e.message || e).replace(/\n/g, ' ') + '\n');
  }
});
rl.on('close', () => process.exit(0));
`;
