/**
 * egress(8) and the completions are written from the command tree that
 * parses the command line (src/cli/share.ts): every visible command and
 * option is in all three, hidden ones in none; the man page renders without
 * a warning; the completions complete in real shells.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { buildProgram } from '../../src/cli/main.js';
import { EXAMPLES } from '../../src/cli/help-text.js';
import { bashCompletion, describeProgram, manPage, zshCompletion, type CommandDoc } from '../../src/cli/share.js';
import { useCli } from '../kernel/forward-env.js';
import { tempDir } from '../helpers.js';
import { run } from './run.js';
import { ROOT } from '../paths.js';

const program = buildProgram({ stdout: () => {}, stderr: () => {}, env: {}, cwd: ROOT }, () => {});
const doc = describeProgram(program);
const man = manPage(doc);
const bash = bashCompletion(doc);
const zsh = zshCompletion(doc);
const HIDDEN = ['_auto-rollback', '_dns-forwarder', '_restore-boot', '_forward-jump'];

/** A command's part of a generated text: from its marker to the next command's. */
function section(text: string, marker: (c: CommandDoc) => string, c: CommandDoc): string {
  const i = doc.commands.indexOf(c);
  const start = text.indexOf(marker(c));
  expect(start, `${c.name} in the text`).toBeGreaterThanOrEqual(0);
  const next = doc.commands[i + 1];
  return text.slice(start, next ? text.indexOf(marker(next), start) : undefined);
}
const manSection = (c: CommandDoc) => section(man, (x) => `.SS ${x.term.replace(/-/g, '\\-')}\n`, c);
const bashSection = (c: CommandDoc) => section(bash, (x) => `        ${x.name})\n`, c);
const zshSection = (c: CommandDoc) => section(zsh, (x) => `                ${x.name})\n`, c);

describe('the tree the docs are written from is the one --help shows', () => {
  test('the commands of --help, in its order, are the documented ones; no hidden command anywhere', async () => {
    const r = await run(['--help'], { cwd: ROOT });
    const listed = r.stdout
      .split('Commands:\n')[1]!
      .split('\n')
      .flatMap((l) => (/^ {2}\S/.test(l) ? [l.trim().split(/\s/)[0]!] : []));
    expect(doc.commands.map((c) => c.name)).toEqual(listed);
    expect(listed).toContain('help');
    for (const h of HIDDEN) {
      expect(program.commands.some((c) => c.name() === h)).toBe(true);
      for (const text of [man, bash, zsh]) expect(text).not.toContain(h);
    }
  });

  test.each(doc.commands.filter((c) => c.name !== 'help').map((c) => [c.name, c] as const))('egress %s --help shows the documented options and examples', async (name, c) => {
    const r = await run([name, '--help'], { cwd: ROOT });
    for (const o of c.options) expect(r.stdout).toContain(o.term);
    for (const x of c.examples) expect(r.stdout).toContain(`\n  ${x.line}\n`);
  });
});

describe.each(doc.commands.map((c) => [c.name, c] as const))('egress %s', (name, c) => {
  test('is in the man page with every argument, option and example', () => {
    const s = manSection(c);
    for (const a of c.args) expect(s).toContain(a.name);
    for (const o of c.options) for (const n of o.names) expect(s).toContain(`\\fB${n.replace(/-/g, '\\-')}\\fR`);
    for (const x of c.examples) expect(s).toContain(x.line.replace(/-/g, '\\-'));
    if (name !== 'help') expect(c.examples.length).toBeGreaterThan(0);
  });

  test('is in the bash completion with every option and every choice', () => {
    expect(bash).toMatch(new RegExp(`local commands='[^']*\\b${name}\\b`));
    const s = bashSection(c);
    for (const o of c.options) for (const n of o.names) expect(s).toMatch(new RegExp(`[ '|]${n}[ '|)]`));
    for (const o of c.options) if (o.completes.kind === 'words') expect(s).toContain(o.completes.words.join(' '));
    for (const g of doc.options) for (const n of g.names) expect(s).toContain(n);
  });

  test('is in the zsh completion with every option and every choice', () => {
    expect(zsh).toContain(`'${name}:`);
    const s = zshSection(c);
    for (const o of c.options) for (const n of o.names) expect(s).toMatch(new RegExp(`[)*']${n}=?\\[`));
    for (const o of c.options) if (o.completes.kind === 'words') expect(s).toContain(`(${o.completes.words.join(' ')})`);
  });
});

describe('examples', () => {
  test('are for visible commands only, and each uses its own command and options of it', () => {
    for (const [name, xs] of Object.entries(EXAMPLES)) {
      const c = doc.commands.find((x) => x.name === name);
      expect(c, name).toBeDefined();
      for (const x of xs) {
        const words = x.line.replace(/^sudo /, '').split(/\s+/);
        expect(words.slice(0, 2)).toEqual(['egress', name]);
        const names = [...c!.options, ...doc.options].flatMap((o) => o.names);
        for (const w of words.filter((w) => w.startsWith('-') && w !== '-')) expect(names, `${x.line}: ${w}`).toContain(w);
      }
    }
  });
});

describe('the man page', () => {
  test('renders without a warning (groff -man -ww -z)', () => {
    const r = spawnSync('groff', ['-man', '-ww', '-z'], { input: man, encoding: 'utf8' });
    expect(r.error).toBeUndefined();
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  test('has the sections of a section-8 page, the default policy, the state directory, the environment and the exit codes', () => {
    expect(man).toMatch(/^\.TH EGRESS 8 /m);
    const sections = [...man.matchAll(/^\.SH (.+)$/gm)].map((m) => m[1]);
    expect(sections).toEqual(['NAME', 'SYNOPSIS', 'DESCRIPTION', 'OPTIONS', 'COMMANDS', 'FILES', 'ENVIRONMENT', 'EXIT STATUS', 'SEE ALSO']);
    for (const s of ['/etc/egress/policy.yaml', '/var/lib/egress/', 'history.jsonl', 'counters.jsonl']) expect(man).toContain(s.replace(/-/g, '\\-'));
    for (const v of ['EGRESS_POLICY', 'EGRESS_STATE_DIR', 'EGRESS_DEBUG']) expect(man).toContain(`.TP\n\\fB${v}\\fR`);
    for (const code of ['0', '1', '2', '3']) expect(man).toContain(`.TP\n\\fB${code}\\fR`);
  });
});

/** Run the generated bash completion on a command line (the last word is the one being completed); what it offers. */
function bashComplete(words: string[], withBashCompletion: boolean): string[] {
  const d = tempDir('egress-bash-');
  writeFileSync(join(d, 'egress'), bash);
  const script = [
    ...(withBashCompletion ? ['source /usr/share/bash-completion/bash_completion', 'type -t _init_completion >/dev/null || exit 7'] : ['type -t _init_completion >/dev/null && exit 8']),
    `source ${d}/egress`,
    `COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')})`,
    `COMP_CWORD=${words.length - 1}`,
    `COMP_LINE='${words.join(' ')}'`,
    '_egress',
    'printf "%s\\n" "${COMPREPLY[@]}"',
  ].join('\n');
  const r = spawnSync('bash', ['--norc', '--noprofile', '-c', script], { cwd: ROOT, encoding: 'utf8' });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return r.stdout.split('\n').filter(Boolean).sort();
}

describe.each([false, true])('the bash completion (bash-completion loaded: %s)', (withBc) => {
  test('egress ch<TAB> → check', () => {
    expect(bashComplete(['egress', 'ch'], withBc)).toEqual(['check']);
  });

  test('egress compile x --target <TAB> → the targets, also as --target=', () => {
    const targets = ['ir', 'iptables', 'nft', 'wince', 'wince-c', 'windows'].sort();
    expect(bashComplete(['egress', 'compile', 'x', '--target', ''], withBc)).toEqual(targets);
    expect(bashComplete(['egress', 'compile', 'x', '--target', '='], withBc)).toEqual(targets);
    expect(bashComplete(['egress', 'compile', 'x', '--target', '=', 'win'], withBc)).toEqual(['wince', 'wince-c', 'windows']);
  });

  test('options of the command, files for the policy, commands for help', () => {
    expect(bashComplete(['egress', 'check', '--s'], withBc)).toEqual(['--silence', '--strict']);
    expect(bashComplete(['egress', '-v', 'lab', '--backend', ''], withBc)).toEqual(['all', 'iptables', 'nft']);
    expect(bashComplete(['egress', 'check', 'examples/apt-o'], withBc)).toEqual(['examples/apt-only.yaml']);
    expect(bashComplete(['egress', 'help', 'pe'], withBc)).toEqual(['persist']);
    expect(bashComplete(['egress', 'confirm', ''], withBc)).toEqual([]);
  });
});

describe('the zsh completion', () => {
  test('zsh -n: the syntax is valid', () => {
    const d = tempDir('egress-zsh-');
    writeFileSync(join(d, '_egress'), zsh);
    const r = spawnSync('zsh', ['-n', join(d, '_egress')], { encoding: 'utf8' });
    expect(r.error).toBeUndefined();
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  /** Complete LINE in an interactive zsh on a pty with _egress installed (zsh-complete.zsh); what it offers. */
  function zshComplete(line: string): string[] {
    const d = tempDir('egress-zsh-');
    writeFileSync(join(d, '_egress'), zsh);
    const r = spawnSync('zsh', ['-f', join(ROOT, 'test', 'cli', 'zsh-complete.zsh'), d, line], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
    expect(r.status).toBe(0);
    return r.stdout.split('\n').filter(Boolean);
  }

  test.each([
    ['egress ch', ['check']],
    ['egress compile x --target ', ['iptables', 'ir', 'nft', 'wince', 'wince-c', 'windows']],
    ['egress lab --backend=', ['all', 'iptables', 'nft']],
    ['egress check --s', ['--silence', '--strict']],
  ])('%j<TAB> → %j', (line, want) => {
    expect(zshComplete(line)).toEqual(want);
  });

  test('a policy argument completes to files', () => {
    // _files adds the directory part of the word as a word of its own.
    expect(zshComplete('egress check examples/apt-o').filter((w) => w.endsWith('.yaml'))).toEqual(['apt-only.yaml']);
  });
});

describe('the build writes them (write-share.ts)', () => {
  const cli = useCli('share');
  test('dist/share/egress.8, egress.bash and _egress, as generated here', () => {
    const built = join(dirname(dirname(cli.path)));
    const r = spawnSync(process.execPath, [join(built, 'cli', 'write-share.js')], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const share = join(built, 'share');
    expect(readFileSync(join(share, 'egress.8'), 'utf8')).toBe(man);
    expect(readFileSync(join(share, 'egress.bash'), 'utf8')).toBe(bash);
    expect(readFileSync(join(share, '_egress'), 'utf8')).toBe(zsh);
    expect(existsSync(join(share, 'egress'))).toBe(false);
  });
});
