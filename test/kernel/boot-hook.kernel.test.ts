/**
 * Persistence on a host not booted by systemd (issue 12): `persist` installs
 * an ifupdown pre-up hook, and the hook — as ifupdown runs it before each
 * interface — restores the confirmed ruleset the first time after boot,
 * never again until the next boot (its marker in /run), and locks egress
 * down when the saved state cannot be read, without failing the interface.
 * The kernel is the oracle: the ruleset live in the namespace after each
 * "boot" (the table deleted, as a reboot leaves it).
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { realExecer } from '../../src/kernel/exec.js';
import { kernelDescribe, useRootGuard } from './harness.js';
import { buildCli, lcEnv, PLAIN, type Lc } from './lifecycle-env.js';
import { jsonResult } from '../json.js';


const x = realExecer();

kernelDescribe('persist without systemd: the ifupdown pre-up hook (kernel)', () => {
  useRootGuard(x);
  let cli = '';
  let lc: Lc | undefined;
  beforeAll(() => {
    cli = buildCli('boothook');
  }, 180_000);
  afterAll(async () => {
    await lc?.egress(['remove']).catch(() => undefined);
    await lc?.close();
    if (cli) rmSync(dirname(dirname(cli)), { recursive: true, force: true });
  }, 60_000);

  test('the hook restores the confirmed ruleset once per boot, and the lockdown when the state is unreadable; it always lets the interface come up', async () => {
    lc = await lcEnv(x, cli);
    const env = { EGRESS_SYSTEMD_DIR: join(lc.dir, 'units'), EGRESS_IFUPDOWN_DIR: join(lc.dir, 'if-pre-up.d') };
    mkdirSync(env.EGRESS_IFUPDOWN_DIR);
    const run = join(lc.dir, 'run');
    mkdirSync(run);
    const policy = lc.write('policy.yaml', PLAIN);
    const applied = await lc.egress(['apply', policy]);
    expect(applied.code, applied.stderr).toBe(0);
    const persisted = await lc.egress(['persist', '--json', '--force'], env);
    expect(persisted.code, persisted.stderr).toBe(0);
    const hook = (jsonResult(persisted.stdout, 'persist', persisted.code) as { ifupdownHook?: string }).ifupdownHook!;
    expect(hook).toBe(join(env.EGRESS_IFUPDOWN_DIR, 'egress'));
    const rules = async () => (await lc!.sh(['nft', 'list', 'table', 'inet', 'egress'])).stdout;
    const before = await rules();
    expect(before).toContain('"web: the web"');
    const boot = async () => {
      expect((await lc!.sh(['nft', 'delete', 'table', 'inet', 'egress'])).code).toBe(0);
      rmSync(join(run, 'egress-restored'), { force: true });
    };
    const ifup = async () => {
      const r = await lc!.sh(['env', `EGRESS_RUN_DIR=${run}`, 'sh', hook]);
      expect(r.code, r.stderr).toBe(0); // never keeps an interface down
    };

    await boot();
    await ifup(); // lo
    expect(await rules()).toBe(before);
    // The next interface of the same boot: nothing again (the table deleted by hand stays deleted).
    expect((await lc.sh(['nft', 'delete', 'table', 'inet', 'egress'])).code).toBe(0);
    await ifup();
    expect((await lc.sh(['nft', 'list', 'table', 'inet', 'egress'])).code).not.toBe(0);

    // A boot (the table is already gone) with the saved state unreadable: the lockdown, and the interface still comes up.
    rmSync(join(run, 'egress-restored'), { force: true });
    writeFileSync(join(lc.stateDir, 'confirmed.json'), '{ not json');
    await ifup();
    expect(await rules()).toContain('egress: lockdown');
  }, 120_000);
});
