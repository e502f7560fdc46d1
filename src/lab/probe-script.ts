/**
 * The prober: runs inside the host namespace as the uid/gid under test
 * (so the firewall's owner match sees that socket owner), tries every probe
 * it is given concurrently, and prints one JSON array of outcomes.
 *
 * Source text run with `node --input-type=module -e`, like the world
 * listener. Input on stdin: `{"timeoutMs": N, "probes": [{"id", "proto":
 * "tcp"|"udp"|"icmp", "dst", "port"?, "host"?}]}`. With `host`, the name is
 * looked up first (getaddrinfo, so the namespace's own hosts file) and the
 * probe is an error unless `dst` is among its addresses. With `name` (and
 * `pool`), the name is asked for through the namespace's resolver (c-ares
 * reading its resolv.conf: the query goes to port 53 of the server named
 * there, as any program's would), A or AAAA by the family of `dst`; REFUSED
 * → refused, another failure → error, an address outside `pool` → error;
 * else every address answered is connected to at once and the probe's
 * outcome is the first one that was not accepted (or accepted), with its
 * address as `dst` and all of them as `answered`. With `dnsQueryName`, a udp
 * probe to port 53 sends a DNS query for that name (any DNS reply counts as
 * through): under `dns.proxy` it reaches the forwarder, not the world.
 *
 * How the kernel's answer shows up in userspace (measured, see docs/lab.md):
 *  - tcp: connect() succeeds → accepted; ECONNREFUSED (the firewall's RST) or
 *    an ICMP error (EHOSTUNREACH, EACCES, ENETUNREACH) → rejected; no answer
 *    within the timeout → dropped (a SYN dropped in OUTPUT is retransmitted
 *    silently).
 *  - udp: the world echoes the datagram → accepted. A datagram dropped or
 *    rejected in OUTPUT makes send() fail with EPERM; a reject then also
 *    delivers its ICMP error to the connected socket (ECONNREFUSED for
 *    port-unreachable, EHOSTUNREACH / EACCES for admin-prohibited) →
 *    rejected; EPERM and silence → dropped.
 *  - icmp: `ping -c1` exits 0 → accepted; prints a "From …" error line →
 *    rejected; silence → dropped.
 *
 * Silence is timed from when the packet left (connect(2), the send
 * callback), never from when the probe began: spawning ping blocks this
 * process's event loop, and the packets of probes started before it wait.
 */
export const PROBE_SOURCE = String.raw`
import net from 'node:net';
import dgram from 'node:dgram';
import { spawn } from 'node:child_process';
import { lookup, Resolver } from 'node:dns/promises';

const REJECT_ERRNO = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'EACCES', 'ENETUNREACH', 'EHOSTDOWN', 'ECONNRESET']);

// Timers run before I/O callbacks in an event-loop turn: if this process was
// starved past the timeout, an answer may be waiting. setImmediate runs after
// the poll phase, so a pending answer wins over the timeout.
const after = (ms, fn) => setTimeout(() => setImmediate(fn), ms);

// net.Socket says when it calls connect(2) from Node 20.12 on.
const [major, minor] = process.versions.node.split('.').map(Number);
const CONNECTION_ATTEMPT = major > 20 || (major === 20 && minor >= 12);

function tcp(p, timeoutMs) {
  return new Promise((resolve) => {
    const s = net.connect({ host: p.dst, port: p.port });
    let done = false;
    let t;
    const finish = (outcome, detail) => { if (done) return; done = true; clearTimeout(t); s.destroy(); resolve({ id: p.id, outcome, detail }); };
    // Silence counts from the SYN: connect(2) runs on a later tick, and this
    // process may spend hundreds of ms before that (spawning ping, starting other probes).
    const start = () => { if (!done && t === undefined) t = after(timeoutMs, () => finish('dropped', 'timeout')); };
    if (CONNECTION_ATTEMPT) s.once('connectionAttempt', start);
    else setImmediate(start); // after the nextTick that connects to an address literal
    s.once('connect', () => finish('accepted', 'connected'));
    s.on('error', (e) => finish(REJECT_ERRNO.has(e.code) ? 'rejected' : e.code === 'EPERM' ? 'dropped' : 'error', e.code || e.message));
  });
}

// A DNS query (A, RD) for name: what a udp/53 probe sends when the forwarder, not the world, receives it.
function dnsQuery(name) {
  const labels = name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'latin1')]));
  const head = Buffer.from([Math.floor(Math.random() * 256), Math.floor(Math.random() * 256), 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
  return Buffer.concat([head, ...labels, Buffer.from([0, 0, 1, 0, 1])]);
}

function udp(p, timeoutMs) {
  return new Promise((resolve) => {
    const s = dgram.createSocket(p.dst.includes(':') ? 'udp6' : 'udp4');
    let done = false;
    const finish = (outcome, detail) => { if (done) return; done = true; clearTimeout(t); try { s.close(); } catch {} resolve({ id: p.id, outcome, detail }); };
    let t;
    s.on('message', () => finish('accepted', 'reply'));
    s.on('error', (e) => finish(REJECT_ERRNO.has(e.code) ? 'rejected' : 'error', e.code || e.message));
    s.connect(p.port, p.dst, (err) => {
      if (err) return finish('error', err.code || err.message);
      // Silence counts from the send callback, when the datagram has left: the
      // send itself runs ticks later, after whatever else this process was doing.
      s.send(p.port === 53 && req.dnsQueryName ? dnsQuery(req.dnsQueryName) : JSON.stringify({ dst: p.dst, id: p.id }), (e) => {
        if (done) return;
        if (!e) return (t = after(timeoutMs, () => finish('dropped', 'sent, no reply')));
        // Refused in OUTPUT: a reject's ICMP error follows within a few ms, a drop's never does.
        if (e.code === 'EPERM') t = after(Math.min(timeoutMs, 150), () => finish('dropped', 'EPERM, no ICMP error'));
        else finish(REJECT_ERRNO.has(e.code) ? 'rejected' : 'error', e.code || e.message);
      });
    });
  });
}

function icmp(p, timeoutMs) {
  return new Promise((resolve) => {
    const wait = Math.max(0.2, timeoutMs / 1000).toFixed(1);
    const c = spawn('ping', ['-n', '-c1', '-W' + wait, p.dst], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (b) => (out += b));
    c.stderr.on('data', (b) => (out += b));
    c.on('error', (e) => resolve({ id: p.id, outcome: 'error', detail: 'cannot run ping: ' + e.message }));
    c.on('close', (code) => {
      if (code === 0) return resolve({ id: p.id, outcome: 'accepted', detail: 'echo-reply' });
      const m = /^From \S+ icmp_seq=\d+ (.*)$/m.exec(out);
      if (m) return resolve({ id: p.id, outcome: 'rejected', detail: m[1].trim() });
      if (code === 1) return resolve({ id: p.id, outcome: 'dropped', detail: 'no reply' });
      resolve({ id: p.id, outcome: 'error', detail: out.trim().split('\n').pop() || 'ping exit ' + code });
    });
  });
}

// Generous: the forwarder may hold an answer until the kernel has its addresses, and a loaded machine is slow.
const resolver = new Resolver({ timeout: 10000, tries: 3 });

async function named(p, timeoutMs) {
  const six = p.dst.includes(':');
  let got;
  try {
    got = six ? await resolver.resolve6(p.name) : await resolver.resolve4(p.name);
  } catch (e) {
    return { id: p.id, outcome: e.code === 'EREFUSED' ? 'refused' : 'error', detail: e.code || e.message };
  }
  if (!got.length) return { id: p.id, outcome: 'error', detail: 'no addresses in the answer' };
  // IPv6 text in one form (RFC 5952, as the URL parser writes it), whoever formatted it.
  const canon = (a) => (a.includes(':') ? new URL('http://[' + a + ']/').hostname.slice(1, -1) : a);
  const pool = new Set(p.pool.map(canon));
  got = got.map(canon);
  const stray = got.filter((a) => !pool.has(a));
  if (stray.length) return { id: p.id, outcome: 'error', detail: 'answered ' + stray.join(', ') + ', not from the pool of the name (not connected to)', answered: got };
  const rs = await Promise.all(got.map((dst) => (p.proto === 'tcp' ? tcp : p.proto === 'udp' ? udp : icmp)({ ...p, dst }, timeoutMs).then((r) => ({ ...r, dst }))));
  const r = rs.find((x) => x.outcome !== 'accepted') ?? rs[0];
  return { id: p.id, outcome: r.outcome, detail: r.detail, dst: r.dst, answered: got };
}

const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const req = JSON.parse(Buffer.concat(chunks).toString('utf8'));
const limit = req.concurrency || 128;
const results = new Array(req.probes.length);
let next = 0;
async function worker() {
  while (next < req.probes.length) {
    const i = next++;
    const p = req.probes[i];
    if (p.host) {
      const family = p.dst.includes(':') ? 6 : 4;
      const got = await lookup(p.host, { all: true, family }).then((as) => as.map((a) => a.address), (e) => e.code || e.message);
      if (!Array.isArray(got) || !got.includes(p.dst)) {
        results[i] = { id: p.id, outcome: 'error', detail: p.host + ' resolves to ' + (Array.isArray(got) ? got.join(', ') || 'nothing' : got) + ' in the namespace, not ' + p.dst };
        continue;
      }
    }
    results[i] = await (p.name ? named(p, req.timeoutMs) : p.proto === 'tcp' ? tcp(p, req.timeoutMs) : p.proto === 'udp' ? udp(p, req.timeoutMs) : icmp(p, req.timeoutMs));
  }
}
await Promise.all(Array.from({ length: Math.min(limit, req.probes.length) }, worker));
process.stdout.write(JSON.stringify(results) + '\n');
`;
