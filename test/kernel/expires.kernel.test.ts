/**
 * `expires` is kept by the kernel itself (issue 12): the rule carries its end
 * (nft `meta time <`, iptables `-m time --datestop`), so it stops admitting
 * on its date with nobody running apply. A rule whose end is an hour away
 * admits; the same rule with its end a minute ago (the IR's `untilSec` set
 * back, as the clock would get there) does not — over IPv4 and IPv6, with
 * the real loaders.
 */
import { expect, test } from 'vitest';
import { compilePolicy } from '../../src/index.js';
import { loadText } from '../helpers.js';
import { kernelDescribe, loadInto } from './harness.js';
import { BACKEND_CASES, connectOnce, ECHO_PORT, usePair } from './pair.js';

kernelDescribe('expires: the kernel stops a rule on its date', () => {
  const { x, client: pairClient } = usePair();

  test.each(BACKEND_CASES)('%s: admitted before its end, refused after it', async (target, k) => {
    const { cli, v4, v6 } = await pairClient(k);
    const l = await loadText(`version: 1\ndefault: reject\nallow:\n  - { name: temp, reason: r, to: ["${v4(1)}", "${v6(1)}"], ports: [tcp/${ECHO_PORT}], expires: 2099-12-31 }\n`);
    expect(l.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    const now = Math.floor(Date.now() / 1000);
    const connect = async () => (await x.run(process.execPath, ['-e', connectOnce(v4(1), v6(1))], { netns: cli, timeoutMs: 30_000 })).stdout.trim().split('\n').sort();
    for (const [untilSec, want] of [
      [now + 3600, ['new v4 connected', 'new v6 connected']],
      [now - 60, ['new v4 ECONNREFUSED', 'new v6 ECONNREFUSED']],
    ] as const) {
      const ir = structuredClone(l.ir!);
      for (const r of ir.rules) r.untilSec = untilSec;
      await loadInto(x, cli, target, compilePolicy(ir, target).value!.text);
      expect(await connect()).toEqual(want);
    }
  }, 60_000);
});
