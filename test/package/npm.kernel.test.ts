/**
 * The npm package (issue 15): `npm pack` of the built checkout, installed
 * with `npm i -g` into a prefix of its own, runs from the installed paths:
 * --version, check, explain, the man page, lab, and apply + persist in a
 * namespace (persist writes its own unit naming the installed program).
 * The package carries the bundle (scripts/bundle.mjs) and no runtime
 * dependencies, so the install needs no registry: it runs with --offline.
 * The prefix is under node_modules/.cache, not a temporary directory:
 * persist refuses a program that lives in one (the host would boot with a
 * unit whose program is gone). Needs the build (scripts/test.sh runs it).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { realExecer } from '../../src/kernel/exec.js';
import { tempDir } from '../helpers.js';
import { kernelDescribe, useRootGuard } from '../kernel/harness.js';
import { lcEnv, PLAIN, type Lc } from '../kernel/lifecycle-env.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; dependencies?: Record<string, string> };
const npm = (args: string[], cwd = ROOT) => spawnSync('npm', [...args, '--no-audit', '--no-fund', '--loglevel=error'], { cwd, encoding: 'utf8' });

const x = realExecer();

kernelDescribe('npm pack, then npm i -g into a prefix of its own (kernel: lab, apply and persist from there)', () => {
  useRootGuard(x);
  const prefix = join(ROOT, 'node_modules', '.cache', `egress-npm-${process.pid}`);
  let files: string[] = [];
  let lc: Lc | undefined;
  afterAll(async () => {
    await lc?.close();
    rmSync(prefix, { recursive: true, force: true });
  }, 60_000);
  beforeAll(() => {
    if (!existsSync(join(ROOT, 'dist', 'bundle', 'egress.js')) || !existsSync(join(ROOT, 'dist', 'share', 'egress.8'))) throw new Error('the build is missing: run npm run build (scripts/test.sh does)');
    const dir = tempDir('egress-npm-');
    const packed = npm(['pack', '--json', '--pack-destination', dir]);
    expect(packed.status, packed.stderr).toBe(0);
    const [info] = JSON.parse(packed.stdout) as { filename: string; files: { path: string }[] }[];
    files = info!.files.map((f) => f.path).sort();
    rmSync(prefix, { recursive: true, force: true });
    const installed = npm(['install', '--global', '--offline', '--prefix', prefix, join(dir, info!.filename)], dir);
    expect(installed.status, installed.stderr).toBe(0);
  }, 120_000);

  test('the tarball holds the program, the man page, the licence and the docs, and no sources, tests or node_modules', () => {
    for (const f of ['LICENSE', 'README.md', 'package.json', 'bin/egress.js', 'dist/bundle/egress.js', 'dist/bundle/stats-worker.js', 'dist/bundle/dns-forwarder.js', 'dist/share/egress.8', 'schema/policy.schema.json', 'schema/json/status.schema.json']) expect(files).toContain(f);
    expect(files.filter((f) => /^(src|test|node_modules|scripts|bench)\//.test(f) || f.endsWith('.ts'))).toEqual([]);
    expect(pkg.dependencies ?? {}).toEqual({}); // everything it runs is in the bundle
  });

  test('the installed egress runs: --version, check, explain; its man page is where man finds it', () => {
    const bin = join(prefix, 'bin', 'egress');
    const run = (args: string[]) => spawnSync(bin, args, { encoding: 'utf8', cwd: prefix, env: { ...process.env, EGRESS_STATE_DIR: join(prefix, 'state') } });
    expect(realpathSync(bin)).toBe(join(prefix, 'lib', 'node_modules', 'egress', 'bin', 'egress.js'));
    const v = run(['--version']);
    expect(v.stdout.trim()).toBe(pkg.version);
    const example = join(prefix, 'lib', 'node_modules', 'egress', 'examples', 'apt-only.yaml');
    const checked = run(['check', example, '--offline']);
    expect(checked.status, checked.stderr).toBe(0);
    expect(checked.stdout).toContain('ok (');
    const explained = run(['explain', example, '--offline', '--to', '192.0.2.1', '--port', 'tcp/443', '--json']);
    expect(explained.status, explained.stderr).toBe(0);
    const man = spawnSync('man', ['-w', 'egress'], { encoding: 'utf8', env: { ...process.env, MANPATH: join(prefix, 'share', 'man') } });
    expect(man.status, man.stderr).toBe(0);
    // npm links share/man/man8/egress.8 to the package's copy; man names the file it found.
    expect(realpathSync(man.stdout.trim())).toBe(realpathSync(join(prefix, 'share', 'man', 'man8', 'egress.8')));
  });

  test('the package is a library too: its entry point loads from the installed copy', () => {
    const entry = join(prefix, 'lib', 'node_modules', 'egress', 'dist', 'bundle', 'index.js');
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', `const m = await import(${JSON.stringify(entry)}); console.log(typeof m.loadPolicyFile)`], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('function');
  });

  test('lab, apply and persist from the installed copy: the unit persist writes names the installed program', async () => {
    const bin = join(prefix, 'bin', 'egress');
    const lab = spawnSync(bin, ['lab', join(prefix, 'lib', 'node_modules', 'egress', 'examples', 'postfix-only-smtp.yaml')], { encoding: 'utf8', env: { ...process.env, EGRESS_STATE_DIR: join(tempDir('egress-npm-lab-'), 'state') } });
    expect(lab.status, lab.stderr).toBe(0);
    expect(lab.stdout).toMatch(/the kernel agrees with explain on every probe/);

    lc = await lcEnv(x, bin);
    const policy = lc.write('policy.yaml', PLAIN);
    const applied = await lc.egress(['apply', policy]);
    expect(applied.code, applied.stderr).toBe(0);
    const env = { EGRESS_SYSTEMD_DIR: join(lc.dir, 'units'), EGRESS_IFUPDOWN_DIR: join(lc.dir, 'if-pre-up.d'), EGRESS_PACKAGED_UNIT_DIR: join(lc.dir, 'no-package') };
    mkdirSync(env.EGRESS_IFUPDOWN_DIR);
    const persisted = await lc.egress(['persist', '--json', '--force'], env);
    expect(persisted.code, persisted.stderr).toBe(0);
    const unit = readFileSync(join(env.EGRESS_SYSTEMD_DIR, 'egress-restore.service'), 'utf8');
    expect(unit).toMatch(new RegExp(`^ExecStart=\\S+ ${bin.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} _restore-boot$`, 'm'));
    expect((await lc.egress(['persist', '--off'], env)).code).toBe(0);
    expect(existsSync(join(env.EGRESS_SYSTEMD_DIR, 'egress-restore.service'))).toBe(false);
    expect((await lc.egress(['remove'])).code).toBe(0);
  }, 300_000);
});
