/**
 * The default policy (issue 15): a command given no policy reads
 * $EGRESS_POLICY, else /etc/egress/policy.yaml; `init` as root writes there;
 * `lab` rehearses it when it exists, else the starter policy. The built-in
 * location is replaced through Io.defaultPolicy (run() always does), so no
 * test reads or writes /etc/egress.
 */
import { copyFileSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { labCommand, labPolicy } from '../../src/cli/commands/lab.js';
import type { Io } from '../../src/cli/io.js';
import type { Execer } from '../../src/kernel/exec.js';
import { STARTER_POLICY } from '../../src/policy/starter.js';
import { tempDir } from '../helpers.js';
import { run } from './run.js';
import { ROOT } from '../paths.js';
import { resultOf } from '../json.js';

const VALID = join(ROOT, 'examples', 'postfix-only-smtp.yaml');

/** A directory standing for /etc, with the default policy's path in it (not created). */
function etc(): { dir: string; policy: string } {
  const dir = tempDir('egress-etc-');
  return { dir, policy: join(dir, 'egress', 'policy.yaml') };
}

describe('a command given no policy', () => {
  test.each([
    [['check']],
    [['compile', '--target', 'nft']],
    [['explain', '--to', '192.0.2.1']],
    [['plan']],
    [['apply']],
    [['refresh']],
    [['stale']],
    [['learn', 'kern.log']],
  ])('egress %j with no default policy: exit 1, one line naming the file and how to choose one', async (argv) => {
    const { policy } = etc();
    const r = await run(argv, { cwd: ROOT, defaultPolicy: policy });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      `egress: error: no policy given, and the default ${policy} does not exist; name the policy file as the argument, set EGRESS_POLICY, or write a starter policy there with "sudo egress init"\n`,
    );
  });

  test('reads the default policy when it exists', async () => {
    const { policy } = etc();
    const init = await run(['init'], { cwd: ROOT, uid: 0, defaultPolicy: policy });
    expect(init.code).toBe(0);
    const r = await run(['check'], { cwd: ROOT, defaultPolicy: policy });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^${policy}: ok \\(`));
    const c = await run(['compile', '--target', 'ir'], { cwd: ROOT, defaultPolicy: policy });
    expect(c.code).toBe(0);
    expect(c.stdout).toMatch(/^mode enforce/m);
  });

  test('EGRESS_POLICY overrides the default location, and the argument overrides both', async () => {
    const { policy } = etc();
    const d = tempDir('egress-env-');
    copyFileSync(VALID, join(d, 'mine.yaml'));
    const env = { EGRESS_POLICY: 'mine.yaml' };
    const r = await run(['check'], { cwd: d, env, defaultPolicy: policy });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^${join(d, 'mine.yaml')}: ok \\(0 allow, 1 deny rule`));
    const given = await run(['check', 'test/diagnostics/unknown-key.yaml'], { cwd: ROOT, env: { EGRESS_POLICY: join(d, 'mine.yaml') }, defaultPolicy: policy });
    expect(given.code).toBe(1);
    expect(given.stderr).toMatch(/^test\/diagnostics\/unknown-key\.yaml:6:5: error: /);
  });

  test('EGRESS_POLICY naming no file: the error says so', async () => {
    const d = tempDir('egress-env-');
    const r = await run(['check'], { cwd: d, env: { EGRESS_POLICY: 'gone.yaml' } });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`egress: error: no policy given, and ${join(d, 'gone.yaml')} (from EGRESS_POLICY) does not exist; name the policy file as the argument, or set EGRESS_POLICY to one that exists\n`);
  });

  test('replay still needs its policy: a log could be taken for it', async () => {
    const r = await run(['replay'], { cwd: ROOT });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe("egress: error: missing required argument 'policy'\n");
  });
});

describe('init without a file', () => {
  test('as root: the default location, its directory made 0755 and the file 0644; commands then read it', async () => {
    const { dir, policy } = etc();
    const r = await run(['init'], { cwd: tempDir('egress-cwd-'), uid: 0, defaultPolicy: policy });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`wrote ${policy}, the default policy (commands read it when given none): edit the resolver and mirror entries, then run "egress check" and "egress lab"\n`);
    expect(readFileSync(policy, 'utf8')).toBe(STARTER_POLICY);
    expect(statSync(dirname(policy)).mode & 0o777).toBe(0o755);
    expect(statSync(policy).mode & 0o777).toBe(0o644);
    expect(statSync(dir).isDirectory()).toBe(true);
    const again = await run(['init'], { cwd: ROOT, uid: 0, defaultPolicy: policy });
    expect(again.code).toBe(1);
    expect(again.stderr).toBe(`egress: error: ${policy} already exists; not overwriting it (use --force)\n`);
  });

  test('as another user: egress.yaml here, and the message says it is not the default', async () => {
    const { policy } = etc();
    const cwd = tempDir('egress-cwd-');
    const r = await run(['init'], { cwd, uid: 1000, defaultPolicy: policy });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`wrote egress.yaml: edit the resolver and mirror entries, then run "egress check egress.yaml" and "egress lab egress.yaml" (not the default policy ${policy}, which "egress init" writes as root)\n`);
    expect(existsSync(join(cwd, 'egress.yaml'))).toBe(true);
    expect(existsSync(policy)).toBe(false);
  });

  test('with EGRESS_POLICY set, as any user: there', async () => {
    const { policy } = etc();
    const cwd = tempDir('egress-cwd-');
    const r = await run(['init', '--json'], { cwd, uid: 1000, env: { EGRESS_POLICY: 'sub/p.yaml' }, defaultPolicy: policy });
    expect(r.code).toBe(0);
    expect(resultOf(r.stdout, 'init', r.code)).toEqual({ file: join(cwd, 'sub', 'p.yaml'), written: true });
    expect(existsSync(join(cwd, 'sub', 'p.yaml'))).toBe(true);
    expect(existsSync(join(cwd, 'egress.yaml'))).toBe(false);
  });
});

describe('lab without a policy', () => {
  const io = (env: Record<string, string>, defaultPolicy: string): Io => ({ stdout: () => {}, stderr: () => {}, env, cwd: ROOT, defaultPolicy });

  test('the starter policy while there is no default policy, and it says so', () => {
    const { policy } = etc();
    expect(labPolicy(io({}, policy), undefined)).toEqual({ said: `rehearsing the starter policy of "egress init": there is no ${policy}; name a policy file as the argument to rehearse it` });
  });

  test('the default policy once it exists, or the file EGRESS_POLICY names', () => {
    const { policy } = etc();
    const d = tempDir('egress-env-');
    writeFileSync(join(d, 'p.yaml'), readFileSync(VALID));
    expect(labPolicy(io({ EGRESS_POLICY: join(d, 'p.yaml') }, policy), undefined)).toEqual({ file: join(d, 'p.yaml'), said: `rehearsing ${join(d, 'p.yaml')}, the default policy (EGRESS_POLICY); name another as the argument` });
    expect(() => labPolicy(io({ EGRESS_POLICY: join(d, 'gone.yaml') }, policy), undefined)).toThrow(/^no policy given, and .*gone\.yaml \(from EGRESS_POLICY\) does not exist/);
    expect(labPolicy(io({ EGRESS_POLICY: join(d, 'p.yaml') }, policy), 'x.yaml')).toEqual({ file: 'x.yaml', said: 'rehearsing x.yaml' });
  });

  /** Answers every command with success and runs nothing: lab's preflight only creates and deletes a namespace. */
  const nothing: Execer = {
    run: async () => ({ code: 0, stdout: '', stderr: '' }),
    start: () => {
      throw new Error('not in this test');
    },
    detach: () => {
      throw new Error('not in this test');
    },
  } as unknown as Execer;

  test.each([
    [false, true],
    [true, false],
  ])('lab (quiet: %s) names the policy it rehearses on standard error: %s', async (quiet, said) => {
    // An invalid policy stops the lab before any namespace; the choice is said before that.
    let stderr = '';
    const d = tempDir('egress-lab-');
    writeFileSync(join(d, 'policy.yaml'), 'version: 1\nmode: enforced\n');
    const lio: Io = { stdout: () => {}, stderr: (s) => void (stderr += s), env: { EGRESS_POLICY: join(d, 'policy.yaml') }, cwd: d };
    const code = await labCommand(lio, undefined, { quiet }, nothing, 0);
    expect(code).toBe(1);
    expect(stderr.includes(`lab: rehearsing ${join(d, 'policy.yaml')}, the default policy (EGRESS_POLICY)`)).toBe(said);
    expect(stderr).toMatch(/policy\.yaml:2:7: error: "mode"/);
  });

});
