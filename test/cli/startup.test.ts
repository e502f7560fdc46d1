/**
 * What a command loads (src/cli/main.ts imports each command's module only
 * when that command runs). Structure, not speed: the built CLI runs under a
 * loader hook that lists every module it loads (load-trace.mjs), and the
 * tests say which ones must not be there. The times are BENCHMARKS.md's
 * ("Start-up", bench/startup.mjs), never asserted here.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, test } from 'vitest';
import { useCli } from '../kernel/forward-env.js';
import { tempDir } from '../helpers.js';
import { run } from './run.js';
import { ROOT } from '../paths.js';

const TRACE = join(ROOT, 'test', 'cli', 'load-trace.mjs');

/** The command modules: src/cli/commands/NAME.ts holds the command NAME. */
const COMMANDS = readdirSync(join(ROOT, 'src', 'cli', 'commands'))
  .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))
  .map((f) => f.slice(0, -3));

describe('what a command loads (the built CLI)', () => {
  const cli = useCli('startup');

  /** Run the built CLI; the modules it loaded, as paths under the build (`cli/main.js`) or `node_modules/PKG/…`. */
  function loads(args: string[]): { status: number | null; stdout: string; modules: string[] } {
    const out = join(tempDir('egress-loads-'), 'loads');
    const r = spawnSync(process.execPath, ['--import', TRACE, cli.path, ...args], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, EGRESS_LOAD_TRACE: out } });
    const build = pathToFileURL(dirname(dirname(cli.path))).href + '/';
    const modules = [...new Set(readFileSync(out, 'utf8').split('\n').filter(Boolean))].map((u) => (u.startsWith(build) ? u.slice(build.length) : u.replace(/^.*\/(node_modules\/)/, '$1')));
    return { status: r.status, stdout: r.stdout, modules };
  }
  const packages = (ms: string[]) => [...new Set(ms.flatMap((m) => (m.startsWith('node_modules/') ? [m.split('/')[1]!] : [])))].sort();
  const commandModules = (ms: string[]) => ms.filter((m) => m.startsWith('cli/commands/')).sort();

  test.each([['--version'], ['--help'], ['help']])('egress %s loads commander and the command table only: no command module, no zod or yaml, no backend', (arg) => {
    const r = loads([arg]);
    expect(r.status).toBe(0);
    if (arg === '--version') expect(r.stdout).toBe('0.1.0\n');
    expect(packages(r.modules)).toEqual(['commander']);
    expect(commandModules(r.modules)).toEqual([]);
    expect(r.modules.filter((m) => m.startsWith('backends/'))).toEqual(['backends/types.js']);
    // The trace itself works: it saw the CLI's own entry.
    expect(r.modules).toContain('cli/main.js');
  });

  test('egress check loads its own command module and the front end, nothing of the life cycle, lab, logs or observation', () => {
    const r = loads(['check', 'examples/apt-only.yaml', '--offline']);
    expect(r.status).toBe(0);
    expect(commandModules(r.modules)).toEqual(['cli/commands/check.js']);
    expect(packages(r.modules)).toEqual(['commander', 'yaml', 'zod']);
    expect(r.modules.filter((m) => /^(kernel|plan|lab|logs|observe|dns|report)\//.test(m))).toEqual([]);
  });

  test('egress explain loads its own command module and no other', () => {
    const r = loads(['explain', 'examples/apt-only.yaml', '--offline', '--to', '192.0.2.1', '--port', 'tcp/443']);
    expect(r.status).toBe(0);
    expect(commandModules(r.modules)).toEqual(['cli/commands/explain.js']);
    expect(r.modules.filter((m) => /^(kernel|plan|lab|logs|observe|dns)\//.test(m))).toEqual([]);
  });
});

describe('--help lists every command (main.ts)', () => {
  test('each module of src/cli/commands/ is a command in --help, and --help lists nothing else', async () => {
    const r = await run(['--help'], { cwd: ROOT });
    expect(r.code).toBe(0);
    const listed = r.stdout
      .split('Commands:\n')[1]!
      .split('\n')
      .flatMap((l) => (/^ {2}\S/.test(l) ? [l.trim().split(/\s/)[0]!] : []));
    expect(listed.filter((c) => c !== 'help').sort()).toEqual([...COMMANDS].sort());
    expect(COMMANDS.length).toBeGreaterThanOrEqual(17);
  });

  test.each(COMMANDS)('egress %s --help: exit 0 and its usage, without running it', async (c) => {
    const r = await run([c, '--help'], { cwd: ROOT });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^Usage: egress ${c} `));
    expect(r.stderr).toBe('');
  });
});
