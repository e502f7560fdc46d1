/**
 * Campaign class "malformed policies", on a live host: every malformed
 * policy that `check` must refuse is handed to `apply` in a throwaway
 * network namespace over a loaded ruleset — half of them over an nft
 * ruleset, half over an iptables one (validation comes before any backend
 * is asked, so each case is tried once). Each must exit
 * 1 with a located error, and leave the live ruleset and the state
 * directory exactly as they were (SPEC: a policy that does not validate
 * changes nothing live).
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { afterEach, expect } from 'vitest';
import { realExecer } from '../../src/kernel/exec.js';
import { kernelDescribe, kernelTest } from '../netns.js';
import { useRootGuard } from '../kernel/harness.js';
import { useCli } from '../kernel/forward-env.js';
import { iptOwned, lcEnv, nftOwned, PLAIN, type Lc } from '../kernel/lifecycle-env.js';
import { CASES, materialize } from './malformed.js';
import { attack, expectNoCrash } from './tally.js';

const x = realExecer();
const open: Lc[] = [];

/** Every file of the state directory with its bytes' hash: what "the state is unchanged" compares. */
function stateFingerprint(dir: string): string {
  return readdirSync(dir)
    .filter((f) => f !== 'lock')
    .sort()
    .map((f) => {
      const p = join(dir, f);
      return statSync(p).isFile() ? `${f} ${createHash('sha256').update(readFileSync(p)).digest('hex')}` : `${f}/`;
    })
    .join('\n');
}

/** The refused cases, small enough to apply one after another (the 10 MB ones are refused at the size check alike). */
const REFUSED = Object.entries(CASES).flatMap(([attackName, cases]) => cases.filter((c) => c.want === 'refused').map((c) => ({ attackName, c })));

kernelDescribe('campaign: malformed policies applied over a live ruleset', () => {
  useRootGuard(x);
  const cli = useCli('campaign-live');
  afterEach(async () => {
    for (const lc of open.splice(0)) await lc.close();
  }, 60_000);

  kernelTest.each(['nft', 'iptables'] as const)('%s', async (backend) => {
    const lc = await lcEnv(x, cli.path);
    open.push(lc);
    const good = await lc.egress(['apply', '--backend', backend, lc.write('good.yaml', PLAIN)]);
    expect(good.code, good.stderr).toBe(0);
    const owned = () => (backend === 'nft' ? nftOwned(lc) : iptOwned(lc));
    const live = await owned();
    const state = stateFingerprint(lc.stateDir);
    expect(live).toMatch(/the web/);
    const mine = REFUSED.filter((_, i) => i % 2 === (backend === 'nft' ? 0 : 1));
    await attack('malformed policies', `apply over a live ruleset (${backend})`, mine, ({ attackName, c }) => `${attackName}: ${c.name}`, async ({ c }, i) => {
      const path = materialize(c, join(lc.dir, `case${i}`));
      const r = await lc.egress(['apply', isAbsolute(path) ? path : join(`case${i}`, path)]);
      expectNoCrash(r.stdout + r.stderr);
      expect(r.code, r.stderr.slice(0, 300)).toBe(1);
      expect(r.stderr).toMatch(/^\S+(?::\d+:\d+)?: error: /m);
      expect(await owned(), 'the live ruleset').toBe(live);
      expect(stateFingerprint(lc.stateDir), 'the state directory').toBe(state);
    });
  }, 600_000);
});
