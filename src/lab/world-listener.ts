/**
 * The program that runs inside the world namespace and answers for every
 * address of the documentation prefixes (which are `local` routes there).
 *
 * Kept as source text and run with `node --input-type=module -e`, so the same
 * code works from dist/ and under the test runner, and needs no file on disk.
 *
 * Protocol (JSON lines): it prints `ready`; each input line
 * `{"tcp":[ports],"udp":[ports]}` makes it listen on those ports (both
 * families) and prints `ok` (or `error <message>`). It exits when its
 * standard input closes, so it never outlives the lab.
 *
 * TCP: one dual-stack listener per port on `::` accepts and closes.
 * UDP: a wildcard socket per port and family receives; the reply must come
 * from the address the probe sent to, or the probe's connected socket drops
 * it, and node has no IP_PKTINFO. So the probe writes its destination into
 * the datagram and the reply goes out of a socket bound to that address and
 * port (SO_REUSEADDR; binding it is allowed by ip_nonlocal_bind in the world
 * namespace). That socket is kept and answers what
 * the kernel delivers to it from then on.
 */
export const WORLD_LISTENER_SOURCE = String.raw`
import net from 'node:net';
import dgram from 'node:dgram';
import readline from 'node:readline';

const tcp = new Map();
const udp = new Map();

function listenTcp(port) {
  if (tcp.has(port)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const s = net.createServer((c) => { c.on('error', () => {}); c.end(); });
    s.once('error', reject);
    s.listen({ port, host: '::', ipv6Only: false, backlog: 4096 }, () => { tcp.set(port, s); resolve(); });
  });
}

function udpSocket(type, port, address) {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket({ type, reuseAddr: true, ipv6Only: type === 'udp6' });
    s.once('error', reject);
    s.bind({ port, address, exclusive: false }, () => { s.removeListener('error', reject); s.on('error', () => {}); resolve(s); });
  });
}

// Reply sockets stay open, one per (family, address, port): while one is
// bound, the kernel delivers datagrams for that exact address to it rather
// than to the wildcard socket, so it must answer them too (a short-lived one
// would swallow a concurrent probe to the same address and port).
const replySockets = new Map();

function replySocket(type, port, dst) {
  const key = type + ' ' + dst + ' ' + port;
  let s = replySockets.get(key);
  if (!s) {
    s = udpSocket(type, port, dst).then((sock) => {
      sock.on('message', (msg, rinfo) => reply(type, port, msg, rinfo));
      return sock;
    });
    s.catch(() => replySockets.delete(key));
    replySockets.set(key, s);
  }
  return s;
}

function reply(type, port, msg, rinfo) {
  let dst;
  try { dst = JSON.parse(msg.toString('utf8')).dst; } catch { return; }
  if (typeof dst !== 'string' || net.isIP(dst) !== (type === 'udp4' ? 4 : 6)) return;
  replySocket(type, port, dst).then(
    (s) => s.send(msg, rinfo.port, rinfo.address),
    (e) => process.stderr.write('world: cannot answer from ' + dst + ' port ' + port + ': ' + e.message + '\n'),
  );
}

async function listenUdp(port) {
  if (udp.has(port)) return;
  const socks = [];
  for (const [type, any] of [['udp4', '0.0.0.0'], ['udp6', '::']]) {
    const s = await udpSocket(type, port, any);
    s.on('message', (msg, rinfo) => reply(type, port, msg, rinfo));
    socks.push(s);
  }
  udp.set(port, socks);
}

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', async (line) => {
  if (!line.trim()) return;
  try {
    const req = JSON.parse(line);
    for (const p of req.tcp ?? []) await listenTcp(p);
    for (const p of req.udp ?? []) await listenUdp(p);
    process.stdout.write('ok\n');
  } catch (e) {
    process.stdout.write('error ' + String(e && e.message || e).replace(/\n/g, ' ') + '\n');
  }
});
rl.on('close', () => process.exit(0));
process.stdout.write('ready\n');
`;
