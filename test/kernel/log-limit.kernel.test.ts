/**
 * What the log's rate limit drops is counted, exactly, by the kernel (issue
 * 12): a denial's counter sits before the limit, and a second count after
 * it (nft: counter `logged`; iptables: the LOG rule's own count). A burst of
 * denials beyond the limit then shows as `notLogged` in status, which is
 * what stats reports as "denials not logged (rate limit)": flows learn can
 * never propose. 1/hour keeps the refill out of the test: exactly the burst
 * of 5 is logged.
 */
import { expect, test } from 'vitest';
import { compilePolicy } from '../../src/index.js';
import { readLive } from '../../src/kernel/backend.js';
import { counterRefs } from '../../src/kernel/lifecycle.js';
import type { Snapshot } from '../../src/kernel/state.js';
import { countersOf, loggingOf } from '../../src/kernel/status.js';
import { loadText } from '../helpers.js';
import { kernelDescribe, loadInto } from './harness.js';
import { BACKEND_CASES, connectOnce, usePair } from './pair.js';

const POLICY = 'version: 1\ndefault: reject\nlog: { rate: 1/hour }\nallow:\n  - { name: web, reason: r, to: [198.51.100.1, "2001:db8:1::1"], ports: [tcp/443] }\n';
const ROUNDS = 10;

kernelDescribe('the log rate limit: what it drops is counted', () => {
  const { x, client } = usePair();

  // nft's default log rule serves both families (one limit, one burst of 5); iptables has one LOG rule per family (5 each).
  test.each(BACKEND_CASES)('%s: 20 denials against a burst of 5 per limit: what was logged and what was not, exactly', async (target, k) => {
    const { cli, v4, v6 } = await client(k);
    const l = await loadText(POLICY);
    expect(l.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    const art = compilePolicy(l.ir!, target).value!;
    await loadInto(x, cli, target, art.text);
    for (let i = 0; i < ROUNDS; i++) {
      const r = await x.run(process.execPath, ['-e', connectOnce(v4(1), v6(1))], { netns: cli, timeoutMs: 30_000 });
      expect(r.stdout.trim().split('\n').sort()).toEqual(['new v4 ECONNREFUSED', 'new v6 ECONNREFUSED']);
    }
    const snap = { kind: 'ruleset', backend: target, ruleset: art.text, default: l.ir!.default, counters: counterRefs(target, l.ir!) } as Snapshot;
    const cur = (await readLive({ execer: x, netns: cli }, target)).live;
    const logged = target === 'nft' ? 5 : 10;
    expect(loggingOf(snap, cur, countersOf(snap, cur), 0)).toEqual({ denials: 2 * ROUNDS, logged, notLogged: 2 * ROUNDS - logged, limit: '1/hour burst 5' });
  }, 60_000);
});
