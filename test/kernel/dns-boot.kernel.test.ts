/**
 * `dns.proxy` at boot, with the kernel as the oracle. A "reboot" of a lab
 * namespace: the forwarder killed, the table gone. Then:
 *
 * - without systemd, `egress _restore-boot` loads the confirmed ruleset (its
 *   DNS redirect first: name service fails closed) and starts the forwarder
 *   itself, detached; what it had learned is gone with the kernel's sets;
 * - when the forwarder cannot start (its port held), the ruleset stays
 *   loaded, nothing answers DNS, and `_restore-boot` fails saying why (the
 *   unit would show failed); the next egress command starts it;
 * - under systemd (restoreAtBoot with a systemd forwarder run) it starts no
 *   process: it writes the configuration egress-dns.service runs, and
 *   removes it when the restored ruleset has no dns.proxy, so the unit's
 *   condition skips it.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import { realExecer, type Started } from '../../src/kernel/exec.js';
import { forwarderRunning, forwarderRunOf, forwarderSpec } from '../../src/kernel/forwarder.js';
import { processStartTime } from '../../src/kernel/lock.js';
import { restoreAtBoot } from '../../src/kernel/persist.js';
import { readState } from '../../src/kernel/state.js';
import { kernelDescribe, useRootGuard } from './harness.js';
import { buildCli, lcEnv, nftOwned, PLAIN, type Lc } from './lifecycle-env.js';
import { resultOf } from '../json.js';

const POLICY = `version: 1
default: reject
dns:
  proxy: true
  upstream: [192.0.2.53]
allow:
  - name: cdn
    reason: the CDN
    to: ["*.cdn.allowed.test"]
    ports: [tcp/443]
deny:
  - name: ads
    reason: refused at DNS
    to: [refused.test]
`;

const x = realExecer();
let cli = '';
const open: Lc[] = [];

kernelDescribe('dns.proxy at boot (kernel)', () => {
  useRootGuard(x);
  beforeAll(() => {
    cli = buildCli('dnsboot');
  }, 180_000);
  afterAll(() => {
    if (cli) rmSync(dirname(dirname(cli)), { recursive: true, force: true });
  });
  afterEach(async () => {
    for (const lc of open.splice(0)) {
      await lc.egress(['remove']).catch(() => undefined); // stops a forwarder it started
      await lc.close();
    }
  }, 60_000);

  /** A namespace with a route to resolv.conf's server (a veth pair inside it: nothing leaves the namespace), so a query reaches the redirect. */
  async function env(): Promise<Lc> {
    const lc = await lcEnv(x, cli);
    open.push(lc);
    for (const argv of [
      ['ip', 'link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd1'],
      ['ip', 'addr', 'add', '192.0.2.10/24', 'dev', 'd0'],
      ['ip', 'link', 'set', 'd0', 'up'],
      ['ip', 'link', 'set', 'd1', 'up'],
    ]) {
      const r = await lc.sh(argv);
      expect(r.code, `${argv.join(' ')}: ${r.stderr}`).toBe(0);
    }
    return lc;
  }
  const ok = async (lc: Lc, args: string[]) => {
    const r = await lc.egress(args);
    expect(r.code, `egress ${args.join(' ')}: ${r.stderr}${r.stdout}`).toBe(0);
    return r;
  };
  const pidOf = (lc: Lc) => (JSON.parse(readFileSync(join(lc.stateDir, 'dns-forwarder.pid'), 'utf8')) as { pid: number }).pid;
  /** "Reboot": the forwarder and the kernel's ruleset are gone. */
  async function reboot(lc: Lc): Promise<void> {
    const pid = pidOf(lc);
    process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 500 && processStartTime(pid) !== undefined; i++) await new Promise((r) => setTimeout(r, 20));
    expect(processStartTime(pid)).toBeUndefined();
    expect((await lc.sh(['nft', 'delete', 'table', 'inet', 'egress'])).code).toBe(0);
  }
  /**
   * Ask the namespace's resolv.conf server (192.0.2.1:53, which the ruleset
   * redirects to the forwarder) for `name`: "answered" or the error code.
   * `timeoutMs` only bounds the wait for an answer that must not come; one
   * that must come gets 10 s (a loaded machine).
   */
  const lookup = async (lc: Lc, name: string, timeoutMs = 10_000) =>
    (await lc.sh([process.execPath, '-e', `new (require('node:dns').promises.Resolver)({ timeout: ${timeoutMs}, tries: 1 }).resolve4(${JSON.stringify(name)}).then(() => console.log('answered'), (e) => console.log(e.code))`])).stdout.trim();
  /** What `status --json` says of the forwarder. */
  const dnsStatus = async (lc: Lc) => resultOf((await ok(lc, ['status', '--json'])).stdout, 'status').dns;

  test('without systemd, _restore-boot loads the redirect and starts the forwarder', async () => {
    const lc = await env();
    await ok(lc, ['apply', lc.write('dns.yaml', POLICY)]);
    const confirmed = await nftOwned(lc);
    const first = pidOf(lc);
    await reboot(lc);

    const r = await lc.egress(['_restore-boot']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/restored .*dns\.yaml .*, and started its DNS forwarder/);
    expect(await nftOwned(lc)).toBe(confirmed);
    const second = pidOf(lc);
    expect(second).not.toBe(first);
    expect(processStartTime(second)).toBeDefined();
    const st = await dnsStatus(lc);
    expect(st).toMatchObject({ running: true, pid: second });
    expect(st!.learned.every((l) => l.elements === 0)).toBe(true);
    // It answers: a denied name is refused by the forwarder (not a timeout of a redirect to nothing).
    expect(await lookup(lc, 'refused.test')).toBe('EREFUSED');
  }, 120_000);

  test('a forwarder that cannot start at boot leaves the host failing closed, and _restore-boot fails saying so', async () => {
    const lc = await env();
    await ok(lc, ['apply', lc.write('dns.yaml', POLICY)]);
    const confirmed = await nftOwned(lc);
    await reboot(lc);
    // Its address is taken: the forwarder cannot bind.
    let holder: Started | undefined;
    try {
      holder = x.start(process.execPath, ['-e', `const s = require('node:dgram').createSocket('udp4'); s.bind(153, '127.0.0.153', () => console.log('bound'))`], { netns: lc.ns });
      expect(await holder.nextLine()).toBe('bound');
      const r = await lc.egress(['_restore-boot']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/restored .*dns\.yaml.*, but the DNS forwarder did not start: .*EADDRINUSE.*name service fails until the next egress command starts it/);
      expect(await nftOwned(lc)).toBe(confirmed); // the redirect is in place: fail closed
      expect((await dnsStatus(lc))?.running).toBe(false);
      expect(await lookup(lc, 'refused.test', 1000)).toBe('ETIMEOUT'); // redirected to the port the forwarder did not get: no answer
    } finally {
      await holder?.stop();
    }
    // The next egress command that takes the lock starts it.
    await ok(lc, ['apply', join(lc.dir, 'dns.yaml')]);
    expect((await dnsStatus(lc))?.running).toBe(true);
  }, 120_000);

  test('under systemd the restore leaves the forwarder to egress-dns.service: it writes what the unit runs, or removes it', async () => {
    const lc = await env();
    await ok(lc, ['apply', lc.write('dns.yaml', POLICY)]);
    await reboot(lc);
    const systemd = forwarderRunOf({ EGRESS_FORWARDER: 'systemd' }, { netns: lc.ns }, ['/usr/bin/node', '/nonexistent/egress.js']);
    const who = { user: 'root', uid: 0 };
    const r = await restoreAtBoot({ execer: x, netns: lc.ns }, lc.stateDir, new Date(), who, systemd);
    expect(r).toEqual({ outcome: 'restored', message: expect.stringMatching(/; egress-dns\.service starts its DNS forwarder$/) });
    expect(forwarderSpec(lc.stateDir)).toBe(JSON.stringify(readState(lc.stateDir, 'confirmed')!.dns));
    expect(forwarderRunning(lc.stateDir)).toBeUndefined(); // no process was started (the "reboot" killed the last)

    await ok(lc, ['apply', lc.write('plain.yaml', PLAIN)]);
    await lc.sh(['nft', 'delete', 'table', 'inet', 'egress']);
    expect((await restoreAtBoot({ execer: x, netns: lc.ns }, lc.stateDir, new Date(), who, systemd)).outcome).toBe('restored');
    expect(existsSync(join(lc.stateDir, 'dns-forwarder.json'))).toBe(false);
  }, 120_000);
});
