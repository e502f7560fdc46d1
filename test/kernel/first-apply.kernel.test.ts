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
 * The client connects over IPv4 and IPv6 BEFORE the ruleset is loaded, then
 * speaks first after it (test/kernel/pair.ts: documentation addresses only).
 */
import { expect, test } from 'vitest';
import { compilePolicy } from '../../src/index.js';
import type { Started } from '../../src/kernel/exec.js';
import { loadText } from '../helpers.js';
import { kernelDescribe, loadInto } from './harness.js';
import { BACKEND_CASES, connectOnce, ECHO_PORT, usePair } from './pair.js';

const client = (v4: string, v6: string) => `
const net = require('node:net');
const readline = require('node:readline');
const socks = {};
let open = 0;
for (const [fam, host] of [['v4', '${v4}'], ['v6', '${v6}']]) {
  const c = net.connect({ host, port: ${ECHO_PORT} }, () => { socks[fam] = c; if (++open === 2) console.log('connected'); });
  c.setEncoding('utf8');
  c.on('error', (e) => console.log('error ' + fam + ' ' + e.code));
  c.on('data', (d) => console.log('echo ' + fam + ' ' + d.trim()));
}
readline.createInterface({ input: process.stdin }).on('line', (l) => { for (const c of Object.values(socks)) c.write(l + '\\n'); });
`;

/** The policy of a host whose egress does not include the server: only its own session should survive. */
const POLICY = 'version: 1\ndefault: reject\nallow:\n  - { name: web, reason: r, to: [198.51.100.1, "2001:db8:1::1"], ports: [tcp/443] }\n';

kernelDescribe('the first apply keeps sessions opened before connection tracking', () => {
  const { x, client: pairClient } = usePair();

  test.each(BACKEND_CASES)('%s: a session open before the first apply keeps working when the host speaks first; a new connection is refused', async (target, k) => {
    const { cli, v4, v6 } = await pairClient(k);
    const l = await loadText(POLICY);
    expect(l.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    const art = compilePolicy(l.ir!, target).value!;
    // Nothing loaded in the client's namespace yet: nothing tracks its connections.
    const c: Started = x.start(process.execPath, ['-e', client(v4(1), v6(1))], { netns: cli });
    try {
      expect(await c.nextLine()).toBe('connected');
      await loadInto(x, cli, target, art.text);
      c.write('after apply\n');
      const lines = [await c.nextLine(), await c.nextLine()].sort();
      expect(lines).toEqual(['echo v4 after apply', 'echo v6 after apply']);
      // The ruleset is live: a new connection to the same server is refused by the default.
      const f = await x.run(process.execPath, ['-e', connectOnce(v4(1), v6(1))], { netns: cli, timeoutMs: 30_000 });
      expect(f.stdout.trim().split('\n').sort()).toEqual(['new v4 ECONNREFUSED', 'new v6 ECONNREFUSED']);
    } finally {
      await c.stop();
    }
  }, 60_000);
});
