/**
 * The prober: runs inside the host namespace as the uid/gid under test
 * (so the firewall's owner match sees that socket owner), tries every probe
 * it is given concurrently, and prints one JSON array of outcomes.
 *
 * Source text run with `node --input-type=module -e`, like the world
 * listener. Input on stdin: `{"timeoutMs": N, "probes": [{"id", "proto":
 * "tcp"|"udp"|"icmp", "dst", "port"?, "host"?}]}`. With `host`, the name is
 * looked up first (getaddrinfo, so the namespace's own hosts file) and the
 * probe is an error unless `dst` is among its addresses.
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
import { lookup } from 'node:dns/promises';

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
      s.send(JSON.stringify({ dst: p.dst, id: p.id }), (e) => {
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
    results[i] = await (p.proto === 'tcp' ? tcp(p, req.timeoutMs) : p.proto === 'udp' ? udp(p, req.timeoutMs) : icmp(p, req.timeoutMs));
  }
}
await Promise.all(Array.from({ length: Math.min(limit, req.probes.length) }, worker));
process.stdout.write(JSON.stringify(results) + '\n');
`;
