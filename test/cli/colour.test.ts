/**
 * The terminal (issue 14). Colour: errors and warnings on stderr, explain's
 * verdict, plan's rows; never with NO_COLOR, TERM=dumb, --no-color, or when
 * the stream is not a terminal. The spawned cases run the built CLI on a
 * pseudo-terminal (util-linux `script`), so processIo's own detection is
 * what is tested. And tables cut to the terminal's width.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { main } from '../../src/cli/main.js';
import { colourDiffRows, colourMessages, colourVerdictLine, colourWanted, paint } from '../../src/diag/colour.js';
import { fixedResolver, NOW, tempDir } from '../helpers.js';
import { ROOT } from '../paths.js';

const ESC = /\x1b\[/;
const RED = '\x1b[31m';
const YELLOW = '\x1b[33m';
const GREEN = '\x1b[32m';

describe('the colour functions', () => {
  test('colourWanted: a terminal, NO_COLOR unset or empty, TERM not dumb', () => {
    expect(colourWanted(true, {})).toBe(true);
    expect(colourWanted(true, { NO_COLOR: '' })).toBe(true); // no-color.org: present and not empty
    expect(colourWanted(true, { NO_COLOR: '1' })).toBe(false);
    expect(colourWanted(true, { TERM: 'dumb' })).toBe(false);
    expect(colourWanted(false, {})).toBe(false);
  });

  test('messages: the word after FILE:LINE:COL or "egress:" only, at a line start; an excerpt line that says "error:" is left alone', () => {
    const text = 'p.yaml:3:5: error: unknown key "x"\n    x: error: yes\n  hint: y\negress: warning: w\negress: internal error: z\n';
    const out = colourMessages(text, true);
    expect(out).toBe(`p.yaml:3:5: ${RED}error\x1b[0m: unknown key "x"\n    x: error: yes\n  hint: y\negress: ${YELLOW}warning\x1b[0m: w\negress: ${RED}internal error\x1b[0m: z\n`);
    expect(colourMessages(text, false)).toBe(text);
  });

  test('diff rows by their first character; the header and its rule stay plain', () => {
    const t = 'change  where  what\n------  -----  ----\n+rule   out    a\n-rule   out    b\n~set    s      c';
    expect(colourDiffRows(t, true).split('\n')).toEqual(['change  where  what', '------  -----  ----', `${GREEN}+rule   out    a\x1b[0m`, `${RED}-rule   out    b\x1b[0m`, `${YELLOW}~set    s      c\x1b[0m`]);
    expect(colourVerdictLine('x\n  verdict: reject by deny rule "smtp"\n', true)).toBe(`x\n  verdict: ${RED}reject\x1b[0m by deny rule "smtp"\n`);
    expect(paint(false, 'red', 'x')).toBe('x');
  });
});

describe('the CLI', () => {
  const policy = join(ROOT, 'examples', 'postfix-only-smtp.yaml');
  const run = async (argv: string[], colour: boolean) => {
    let stdout = '';
    let stderr = '';
    const code = await main(argv, { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s), env: {}, cwd: ROOT, resolver: fixedResolver(), now: NOW, colour: { stdout: colour, stderr: colour } });
    return { code, stdout, stderr };
  };

  test('where the streams want colour: the verdict and the error word are coloured; --no-color (before or after the command) and a plain stream get none', async () => {
    const args = ['explain', policy, '--to', '2001:db8::25', '--port', 'tcp/25', '--user', 'www-data', '--offline'];
    const coloured = await run(args, true);
    expect(coloured.code).toBe(0);
    expect(coloured.stdout).toContain(`  verdict: ${RED}reject\x1b[0m by`);
    for (const off of [await run([...args, '--no-color'], true), await run(['--no-color', ...args], true), await run(args, false)]) {
      expect(off.stdout).not.toMatch(ESC);
      expect(off.stdout).toContain('  verdict: reject by');
    }
    const dir = tempDir('egress-colour-');
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'version: 1\nallow:\n  - name: x\n    to: [192.0.2.1]\n    port: [tcp/1]\n');
    const err = await run(['check', bad], true);
    expect(err.code).toBe(1);
    expect(err.stderr).toContain(`bad.yaml:5:5: ${RED}error\x1b[0m:`);
    expect((await run(['check', bad, '--no-color'], true)).stderr).not.toMatch(ESC);
  });

  // The built CLI on a pseudo-terminal: processIo decides. `script` merges both streams into the terminal's output.
  const onPty = (env: Record<string, string>) =>
    spawnSync('script', ['-qfec', `${process.execPath} bin/egress.js explain examples/postfix-only-smtp.yaml --to 2001:db8::25 --port tcp/25 --user www-data --offline`, '/dev/null'], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { ...process.env, TERM: 'xterm', NO_COLOR: '', ...env },
      timeout: 60_000,
    });

  test('on a terminal the built CLI colours; with NO_COLOR=1 or TERM=dumb it does not; through a pipe it does not', () => {
    const tty = onPty({});
    expect(tty.status, tty.stderr).toBe(0);
    expect(tty.stdout).toContain(`verdict: ${RED}reject`);
    expect(onPty({ NO_COLOR: '1' }).stdout).not.toMatch(ESC);
    expect(onPty({ TERM: 'dumb' }).stdout).not.toMatch(ESC);
    const piped = spawnSync(process.execPath, ['bin/egress.js', 'explain', 'examples/postfix-only-smtp.yaml', '--to', '2001:db8::25', '--port', 'tcp/25', '--user', 'www-data', '--offline'], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, NO_COLOR: '' } });
    expect(piped.status).toBe(0);
    expect(piped.stdout).toContain('verdict: reject');
    expect(piped.stdout).not.toMatch(ESC);
  });

  test('on a 60-column terminal the built CLI cuts its tables to fit; through a pipe it does not', () => {
    const dir = tempDir('egress-width-');
    const flows = join(dir, 'flows.csv');
    writeFileSync(flows, 'to,port,user\n2001:db8::25,tcp/25,www-data\n192.0.2.10,udp/53,root\n');
    const cmd = `${process.execPath} bin/egress.js explain examples/postfix-only-smtp.yaml --offline --silence unknown-user --flows ${flows}`;
    const tty = spawnSync('script', ['-qfec', `stty cols 60; ${cmd}`, '/dev/null'], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, TERM: 'xterm', NO_COLOR: '1' }, timeout: 60_000 });
    expect(tty.status, tty.stdout).toBe(0);
    const lines = tty.stdout.replace(/\r/g, '').split('\n').filter(Boolean);
    expect(lines.length).toBeGreaterThan(3);
    for (const l of lines) expect(l.length, l).toBeLessThanOrEqual(60);
    expect(tty.stdout).toContain('…');
    const piped = spawnSync(process.execPath, ['bin/egress.js', 'explain', 'examples/postfix-only-smtp.yaml', '--offline', '--flows', flows], { cwd: ROOT, encoding: 'utf8' });
    expect(piped.status).toBe(0);
    expect(Math.max(...piped.stdout.split('\n').map((l) => l.length))).toBeGreaterThan(60);
    expect(piped.stdout).not.toContain('…');
  });
});
