/**
 * The Debian package (issue 15), built by scripts/deb.sh, installed on this
 * machine with dpkg -i, used from the installed paths as an operator would,
 * then purged: afterwards nothing of it is left but what Debian keeps.
 *
 * This changes the machine's own file system (as the proof asks),
 * never its firewall: apply, persist and lab run in namespaces of their own,
 * the systemd directory is a temporary one. It refuses to run where egress
 * is already installed as a package (it would purge someone's install).
 * Needs the build (scripts/test.sh runs it first) and lintian (setup.sh).
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { realExecer } from '../../src/kernel/exec.js';
import { tempDir } from '../helpers.js';
import { kernelDescribe, useRootGuard } from '../kernel/harness.js';
import { lcEnv, type Lc } from '../kernel/lifecycle-env.js';
import { jsonResult } from '../json.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const x = realExecer();
const sh = (cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): SpawnSyncReturns<string> => spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ...env } });
const installedStatus = () => sh('dpkg-query', ['-W', '-f=${Status}', 'egress']).stdout;

kernelDescribe('the Debian package: build, lintian, install, use, purge (kernel)', () => {
  useRootGuard(x);
  let deb = '';
  let installedByUs = false;
  let lc: Lc | undefined;
  let owned: string[] = [];

  beforeAll(() => {
    if (installedStatus().includes('installed')) throw new Error('egress is installed as a package on this machine; this test installs and purges it: dpkg --purge egress first');
    for (const d of ['/etc/egress', '/var/lib/egress']) if (existsSync(d)) throw new Error(`${d} exists on this machine; this test installs the package and purges it, which removes ${d}: move it away first`);
    if (!existsSync(join(ROOT, 'dist', 'bundle', 'egress.js'))) throw new Error('the build is missing: run npm run build (scripts/test.sh does)');
    const out = tempDir('egress-deb-');
    const built = spawnSync('bash', [join(ROOT, 'scripts', 'deb.sh')], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, EGRESS_DEB_NO_BUILD: '1', EGRESS_DEB_OUT: out } });
    expect(built.status, built.stderr).toBe(0);
    deb = built.stdout.trim();
    expect(deb).toBe(join(out, `egress_${version}_all.deb`));
  }, 120_000);

  afterAll(async () => {
    await lc?.close();
    if (installedByUs && installedStatus().includes('installed')) sh('dpkg', ['--purge', 'egress']);
  }, 120_000);

  test('lintian: no errors; the warnings are the ones docs/packaging.md explains', () => {
    const r = sh('lintian', ['--allow-root', '--no-tag-display-limit', deb]);
    const tags = r.stdout.split('\n').filter((l) => /^[EW]: /.test(l));
    expect(tags.filter((l) => l.startsWith('E: '))).toEqual([]);
    expect(tags.map((l) => l.split(' ')[2])).toEqual(['systemd-service-file-refers-to-unusual-wantedby-target']);
  }, 120_000);

  test('dpkg -i installs it; the installed egress runs from /usr/bin, its man page and completions are found', () => {
    const i = sh('dpkg', ['-i', deb]);
    installedByUs = true;
    if (i.status !== 0) expect(sh('apt-get', ['install', '-f', '-y', '-qq']).status).toBe(0); // dependencies
    expect(installedStatus()).toBe('install ok installed');
    owned = sh('dpkg-query', ['-L', 'egress']).stdout.split('\n').filter(Boolean);

    expect(sh('/usr/bin/egress', ['--version']).stdout.trim()).toBe(version);
    const man = sh('man', ['-w', 'egress']);
    expect(man.stdout.trim(), man.stderr).toBe('/usr/share/man/man8/egress.8.gz');
    expect(statMode('/var/lib/egress')).toBe(0o700);
    expect(statMode('/etc/egress/policy.yaml')).toBe(0o644);
    expect(sh('dpkg-query', ['-W', '-f=${Conffiles}', 'egress']).stdout).toMatch(/\/etc\/egress\/policy\.yaml[\s\S]*\/etc\/logrotate\.d\/egress/);
    const rot = sh('logrotate', ['--debug', '/etc/logrotate.d/egress']); // --debug: reads and plans, rotates nothing
    expect(rot.status, rot.stderr).toBe(0);
    expect(rot.stderr).not.toMatch(/error/i);

    // bash: the completion script registers a function for egress; "egress ch<TAB>" offers check.
    const bash = sh('bash', ['-c', 'source /usr/share/bash-completion/completions/egress && f=$(complete -p egress | sed -n "s/.*-F \\([^ ]*\\).*/\\1/p") && COMP_WORDS=(egress ch) COMP_CWORD=1 COMP_LINE="egress ch" COMP_POINT=9 && "$f" egress ch egress && printf "%s\\n" "${COMPREPLY[@]}"']);
    expect(bash.status, bash.stderr).toBe(0);
    expect(bash.stdout.split('\n')).toContain('check');
    expect(existsSync('/usr/share/zsh/vendor-completions/_egress')).toBe(true);
    if (existsSync('/usr/bin/zsh')) expect(sh('zsh', ['-n', '/usr/share/zsh/vendor-completions/_egress']).status).toBe(0);
  }, 120_000);

  test('check, lab, apply and persist of /etc/egress/policy.yaml from the installed paths (in namespaces); persist enables the shipped units', async () => {
    lc = await lcEnv(x, '/usr/bin/egress');
    // The package's own state directory (made by its postinst, purged below; the test refuses to run where it existed before).
    const state = '/var/lib/egress';
    // In the namespace: its resolver is a documentation address there, so nothing leaves the machine.
    const run = (args: string[], env: Record<string, string> = {}) => lc!.sh(['env', `EGRESS_STATE_DIR=${state}`, ...Object.entries(env).map(([k, v]) => `${k}=${v}`), '/usr/bin/egress', ...args]);
    const checked = await run(['check']); // as root, no argument: the default /etc/egress/policy.yaml
    expect(checked.code, checked.stderr).toBe(0);
    expect(checked.stdout).toContain('/etc/egress/policy.yaml: ok');

    const lab = sh('/usr/bin/egress', ['lab', '/etc/egress/policy.yaml'], { EGRESS_STATE_DIR: join(lc.dir, 'lab-state') });
    expect(lab.status, lab.stderr).toBe(0);
    expect(lab.stdout).toMatch(/the kernel agrees with explain on every probe/);

    const applied = await run(['apply']);
    expect(applied.code, applied.stderr).toBe(0);
    // Where persist links (not /etc/systemd/system) and where a host without systemd gets its hook (not /etc/network).
    const env = { EGRESS_SYSTEMD_DIR: join(lc.dir, 'units'), EGRESS_IFUPDOWN_DIR: join(lc.dir, 'if-pre-up.d') };
    mkdirSync(env.EGRESS_IFUPDOWN_DIR);
    const persisted = await run(['persist', '--json'], env);
    expect(persisted.code, persisted.stderr).toBe(0);
    const p = jsonResult(persisted.stdout, 'persist', persisted.code ?? undefined) as { packaged?: unknown; notPackaged?: string };
    expect(p.notPackaged).toBeUndefined();
    expect(p.packaged).toBeTruthy();
    const link = join(env.EGRESS_SYSTEMD_DIR, 'sysinit.target.wants', 'egress-restore.service');
    expect(realpathSync(link)).toBe(realpathSync('/lib/systemd/system/egress-restore.service'));
    const restore = readFileSync(link, 'utf8');
    expect(restore).toMatch(/^ExecStart=\/usr\/bin\/egress _restore-boot$/m);
    expect(restore).not.toContain(ROOT);
    expect(readdirSync(env.EGRESS_SYSTEMD_DIR).filter((f) => !f.endsWith('.wants'))).toEqual([]); // links only: no unit files of its own

    const off = await run(['persist', '--off'], env);
    expect(off.code, off.stderr).toBe(0);
    expect(existsSync(link)).toBe(false);
    expect(existsSync('/lib/systemd/system/egress-restore.service')).toBe(true); // the package's unit stays
    const removed = await run(['remove']);
    expect(removed.code, removed.stderr).toBe(0);
  }, 300_000);

  test('dpkg --purge leaves nothing of it: files, /etc/egress, /var/lib/egress', () => {
    expect(owned.length).toBeGreaterThan(0);
    const p = sh('dpkg', ['--purge', 'egress']);
    expect(p.status, p.stderr).toBe(0);
    expect(installedStatus()).not.toContain('installed');
    const left = owned.filter((f) => existsSync(f) && !statSync(f).isDirectory()); // directories are shared (/lib is a link on merged-/usr hosts)
    expect(left).toEqual([]);
    for (const d of ['/etc/egress', '/var/lib/egress', '/usr/lib/egress', '/usr/share/doc/egress']) expect(existsSync(d), d).toBe(false);
  }, 120_000);
});

function statMode(p: string): number {
  return lstatSync(p).mode & 0o7777;
}
