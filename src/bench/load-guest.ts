/**
 * The load generator of the kernel benchmark, run inside a host namespace
 * like the prober (source text, `node --input-type=module -e`). Input on
 * stdin: `{"mode": "tcp"|"udp", "dst", "port", "durationMs", "concurrency"}`;
 * prints `{"count", "elapsedMs", "errors", "cpuUs"}` (cpuUs: this process's CPU
 * time over the run, user + system, all threads; it includes the kernel's
 * work done in its context, such as a veth path's softirq).
 *
 *  - tcp: `concurrency` loops, each connecting, and on connect closing with
 *    RST (no TIME_WAIT, so ephemeral ports never run out); count = completed
 *    connection setups. Every SYN is a new conntrack entry, so each one
 *    crosses the whole ruleset.
 *  - udp: one unconnected socket, `concurrency` sends in flight; count =
 *    datagrams the kernel accepted (send() succeeded: past OUTPUT).
 */
export const LOAD_SOURCE = String.raw`
import net from 'node:net';
import dgram from 'node:dgram';

const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const req = JSON.parse(Buffer.concat(chunks).toString('utf8'));
let count = 0;
let errors = 0;
const start = process.hrtime.bigint();
const cpu0 = process.cpuUsage();
const deadline = Date.now() + req.durationMs;

function tcpLoop() {
  return new Promise((resolve) => {
    const once = () => {
      if (Date.now() >= deadline) return resolve();
      const s = net.connect({ host: req.dst, port: req.port });
      s.once('connect', () => { count++; s.resetAndDestroy(); setImmediate(once); });
      s.once('error', () => { errors++; s.destroy(); setImmediate(once); });
    };
    once();
  });
}

function udpRun() {
  return new Promise((resolve) => {
    const s = dgram.createSocket(req.dst.includes(':') ? 'udp6' : 'udp4');
    const payload = Buffer.alloc(32, 120);
    let inflight = 0;
    let stopped = false;
    let closed = false;
    const maybeEnd = () => {
      if (stopped && inflight === 0 && !closed) { closed = true; s.close(); resolve(); }
    };
    const pump = () => {
      while (!stopped && inflight < req.concurrency) {
        if (Date.now() >= deadline) { stopped = true; break; }
        inflight++;
        s.send(payload, req.port, req.dst, (e) => {
          inflight--;
          if (e) errors++; else count++;
          if (stopped) maybeEnd(); else pump();
        });
      }
      maybeEnd();
    };
    pump();
  });
}

if (req.mode === 'tcp') await Promise.all(Array.from({ length: req.concurrency }, tcpLoop));
else await udpRun();
const elapsedMs = Number(process.hrtime.bigint() - start) / 1e6;
const cpu = process.cpuUsage(cpu0);
process.stdout.write(JSON.stringify({ count, elapsedMs, errors, cpuUs: cpu.user + cpu.system }) + '\n');
`;
