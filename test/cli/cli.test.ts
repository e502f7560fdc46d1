import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { main } from '../../src/cli/main.js';
import { run } from './run.js';
import { tempDir } from '../helpers.js';
import { envelope, resultOf } from '../json.js';
import { ROOT } from '../paths.js';

const tmp = () => tempDir('egress-cli-');

describe('exit codes', () => {
  test.each([
    [['check', 'examples/postfix-only-smtp.yaml'], 0],
    [['check', 'test/diagnostics/unknown-key.yaml'], 1],
    [['check', 'nope.yaml'], 1],
    [['--help'], 0],
    [['--version'], 0],
    [['compile', 'examples/postfix-only-smtp.yaml', '--target', 'ir'], 0],
  ])('egress %j → %i', async (argv, code) => {
    const r = await run(argv, { cwd: ROOT });
    expect(r.code).toBe(code);
    expect(r.stderr).not.toMatch(/\n\s+at /); // never a stack trace
  });

  // Usage errors: exit 2, and exactly one line saying what is wrong (no trace, nothing on stdout).
  test.each([
    [['check', '--bogus', 'x.yaml'], "egress: error: unknown option '--bogus'"],
    [['frobnicate'], "egress: error: unknown command 'frobnicate'"],
    [['explain', 'examples/postfix-only-smtp.yaml'], 'egress: error: explain needs --to ADDR (or --flows FILE)'],
    [['explain', 'examples/postfix-only-smtp.yaml', '--to', 'not-an-addr!'], 'egress: error: bad destination "not-an-addr!": expected an IPv4 or IPv6 address'],
    [['explain', 'examples/postfix-only-smtp.yaml', '--to', '192.0.2.1', '--port', 'tcp/99999'], 'egress: error: port out of range in "tcp/99999"'],
    [['compile', 'examples/postfix-only-smtp.yaml', '--target', 'bogus'], "egress: error: option '--target <target>' argument 'bogus' is invalid. Allowed choices are nft, iptables, windows, wince, wince-c, ir."],
    [['compile', 'examples/postfix-only-smtp.yaml'], "egress: error: required option '--target <target>' not specified"],
  ])('usage error: egress %j → 2', async (argv, message) => {
    const r = await run(argv, { cwd: ROOT });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`${message}\n`);
    expect(r.stdout).toBe('');
  });

  test('no command at all: the usage on stderr, exit 2', async () => {
    const r = await run([], { cwd: ROOT });
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n').slice(0, 3)).toEqual(['Usage: egress [options] [command]', '', 'One declarative policy file in, a host egress firewall out.']);
    expect(r.stdout).toBe('');
  });

  test('a missing file is a one-line error, not a trace', async () => {
    const r = await run(['check', 'nope.yaml'], { cwd: ROOT });
    expect(r.stderr.split('\n')[0]).toBe('nope.yaml: error: cannot read nope.yaml: no such file');
  });
});

describe('files that are not what a policy or set file should be (D6)', () => {
  test('a policy of /dev/zero is refused at once, not read until memory runs out', async () => {
    const r = await run(['check', '/dev/zero'], { cwd: ROOT });
    expect(r.code).toBe(1);
    expect(r.stderr.split('\n')[0]).toBe('/dev/zero: error: cannot read /dev/zero: is a character device, not a regular file');
  });

  test('a FIFO as policy is refused without waiting for a writer', async () => {
    const d = tmp();
    execFileSync('mkfifo', [join(d, 'p.yaml')]);
    const r = await run(['check', 'p.yaml'], { cwd: d });
    expect(r.code).toBe(1);
    expect(r.stderr.split('\n')[0]).toBe('p.yaml: error: cannot read p.yaml: is a FIFO (named pipe), not a regular file');
  });

  test('set files that are devices or FIFOs are located errors at their file: line', async () => {
    const d = tmp();
    execFileSync('mkfifo', [join(d, 'fifo.txt')]);
    writeFileSync(
      join(d, 'p.yaml'),
      'version: 1\nsets:\n  a: { file: /dev/zero }\n  b: { file: fifo.txt }\nallow:\n  - name: x\n    to: [$a, $b]\n    ports: [tcp/443]\n    reason: test\n',
    );
    const r = await run(['check', 'p.yaml'], { cwd: d });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^p\.yaml:3:\d+: error: cannot read set file "\/dev\/zero": is a character device, not a regular file$/m);
    expect(r.stderr).toMatch(/^p\.yaml:4:\d+: error: cannot read set file "fifo\.txt": is a FIFO \(named pipe\), not a regular file$/m);
  });
});

describe('expires is compiled into the rule (issue 12)', () => {
  const POLICY = 'version: 1\nallow:\n  - { name: temp, reason: r, to: [192.0.2.9], ports: [tcp/443], expires: 2099-12-31 }\n';
  test.each([
    ['nft', 'meta time < 4102444800 ip daddr @allow_temp_v4_addr tcp dport 443'],
    ['iptables', '-A EGRESS -m time --datestop 2099-12-31T23:59:59 -d 192.0.2.9/32 -p tcp'],
    ['ir', 'until 2100-01-01T00:00:00.000Z'],
  ])('%s carries the end of the expiry day', async (target, want) => {
    const d = tmp();
    writeFileSync(join(d, 'p.yaml'), POLICY);
    const r = await run(['compile', 'p.yaml', '--target', target], { cwd: d });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(want);
  });

  test.each(['windows', 'wince'])('%s cannot end a rule on a date, and says so instead of keeping it open', async (target) => {
    const d = tmp();
    writeFileSync(join(d, 'p.yaml'), POLICY);
    const r = await run(['compile', 'p.yaml', '--target', target, ...(target === 'wince' ? ['--host', '192.0.2.101,2001:db8::101'] : [])], { cwd: d });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`rule "temp": "expires" cannot be expressed by backend "${target}"`));
  });
});

describe('check --strict', () => {
  test('a missing reason fails the check (exit 1) only with --strict', async () => {
    const d = tmp();
    writeFileSync(join(d, 'p.yaml'), 'version: 1\nallow:\n  - name: a\n    to: [192.0.2.1]\n');
    expect((await run(['check', 'p.yaml'], { cwd: d })).code).toBe(0);
    const r = await run(['check', '--strict', 'p.yaml'], { cwd: d });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^p\.yaml:3:11: error: rule "a" has no reason, and --strict requires one$/m);
  });
});

describe('init', () => {
  test('writes a starter policy that checks clean and refuses to overwrite', async () => {
    const dir = tmp();
    expect((await run(['init'], { cwd: dir, uid: 1000 })).code).toBe(0);
    const r = await run(['check', 'egress.yaml'], { cwd: dir });
    expect(r.code).toBe(0);
    const again = await run(['init'], { cwd: dir, uid: 1000 });
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already exists/);
    expect((await run(['init', '--force'], { cwd: dir, uid: 1000 })).code).toBe(0);
    expect(readFileSync(join(dir, 'egress.yaml'), 'utf8')).toMatch(/^# egress policy/);
  });

  test('a link planted at the name is never followed, with or without --force (D17)', async () => {
    const dir = tmp();
    symlinkSync(join(dir, 'created-by-root'), join(dir, 'egress.yaml')); // dangling
    const r = await run(['init', 'egress.yaml'], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/egress\.yaml already exists/);
    const f = await run(['init', '--force', 'egress.yaml'], { cwd: dir });
    expect(f.code).toBe(1);
    expect(f.stderr).toMatch(/is not a regular file/);
    expect(existsSync(join(dir, 'created-by-root'))).toBe(false);
  });

  test('"-" prints it', async () => {
    const r = await run(['init', '-'], { cwd: tmp() });
    expect(r.stdout).toMatch(/version: 1/);
  });
});

describe('-q and -v', () => {
  test('check -q: nothing on standard output when valid; errors and warnings as without it', async () => {
    const loud = await run(['check', 'test/diagnostics/host-bits.yaml'], { cwd: ROOT });
    const quiet = await run(['check', '-q', 'test/diagnostics/host-bits.yaml'], { cwd: ROOT });
    expect(loud.code).toBe(0);
    expect(loud.stdout).toMatch(/: ok \(/);
    expect(loud.stderr).toMatch(/warning: /);
    expect(quiet).toEqual({ ...loud, stdout: '' });
    const bad = await run(['check', '--quiet', 'test/diagnostics/unknown-key.yaml'], { cwd: ROOT });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^test\/diagnostics\/unknown-key\.yaml:6:5: error: /);
    const both = await run(['check', '-q', '--json', 'examples/apt-only.yaml'], { cwd: ROOT });
    expect(both.code).toBe(2);
    expect(both.stderr).toBe("egress: error: option '--json' cannot be used with option '-q, --quiet'\n");
  });

  test('-v (before or after the command): an internal error shows its stack trace; without it, one line', async () => {
    const failing = (argv: string[]) => {
      let stderr = '';
      const io = { stdout: () => { throw new TypeError('stdout is gone'); }, stderr: (s: string) => void (stderr += s), env: {}, cwd: ROOT };
      return main(argv, io).then((code) => ({ code, stderr }));
    };
    const plain = await failing(['check', 'examples/apt-only.yaml', '--offline']);
    expect(plain).toEqual({ code: 1, stderr: 'egress: internal error: stdout is gone (please report this)\n' });
    for (const argv of [['-v', 'check', 'examples/apt-only.yaml', '--offline'], ['check', '--verbose', 'examples/apt-only.yaml', '--offline']]) {
      const v = await failing(argv);
      expect(v.code).toBe(1);
      expect(v.stderr).toMatch(/^egress: internal error: stdout is gone \(please report this\)\nTypeError: stdout is gone\n\s+at /);
    }
  });
});

describe('check --json', () => {
  test('reports diagnostics with 1-based positions and codes', async () => {
    const r = await run(['check', '--json', 'test/diagnostics/unknown-key.yaml'], { cwd: ROOT });
    expect(r.code).toBe(1);
    const j = envelope(r.stdout, 'check', r.code);
    expect(j).toMatchObject({ ok: false, result: { errors: 1 }, diagnostics: [{ code: 'unknown-key', line: 6, col: 5, hint: 'did you mean "ports"?' }] });
  });

  test('--silence hides a warning code', async () => {
    const r = await run(['check', '--json', '--silence', 'missing-reason,host-bits-set', 'test/diagnostics/host-bits.yaml'], { cwd: ROOT });
    expect(envelope(r.stdout, 'check', r.code).diagnostics).toEqual([]);
  });
});

describe('explain', () => {
  test('the seed IPv6 side door is closed: www-data to an MX over IPv6 port 25', async () => {
    const r = await run(['explain', 'examples/postfix-only-smtp.yaml', '--to', '2001:db8:4001:c02::1a', '--port', 'tcp/25', '--user', 'www-data', '--json'], { cwd: ROOT });
    expect(r.code).toBe(0);
    // SPEC §3: an object with verdict and rules (beside the envelope's fields for one flow); the answer itself is result[0].
    expect(envelope(r.stdout, 'explain', r.code)).toMatchObject({ verdict: 'reject', audit: false, rules: [{ name: 'smtp', action: 'deny', line: 15, col: 11 }] });
    expect(resultOf(r.stdout, 'explain')).toMatchObject([{ verdict: 'reject', audit: false, decidedBy: 'deny', rules: [{ name: 'smtp', action: 'deny', line: 15, col: 11 }] }]);
  });

  test('postfix may send over IPv6', async () => {
    const r = await run(['explain', 'examples/postfix-only-smtp.yaml', '--to', '2001:db8:4001:c02::1a', '--port', 'tcp/25', '--user', 'postfix', '--json'], { cwd: ROOT });
    expect(resultOf(r.stdout, 'explain', r.code)).toMatchObject([{ verdict: 'accept', decidedBy: 'default', rules: [] }]);
  });

  test('a flow an except spared names the deny rule and the except that spared it', async () => {
    const r = await run(['explain', 'examples/postfix-only-smtp.yaml', '--to', '2001:db8:4001:c02::1a', '--port', 'tcp/25', '--user', 'postfix'], { cwd: ROOT });
    expect(r.stdout.split('\n').slice(1, 3)).toEqual([
      '  verdict: accept by no rule matched (deny rule "smtp" excepted it): the default',
      '    spared from deny smtp  examples/postfix-only-smtp.yaml:15:11 by its except at examples/postfix-only-smtp.yaml:18:13',
    ]);
    const j = await run(['explain', 'examples/postfix-only-smtp.yaml', '--to', '2001:db8:4001:c02::1a', '--port', 'tcp/25', '--user', 'postfix', '--json'], { cwd: ROOT });
    expect(resultOf(j.stdout, 'explain', j.code)[0]!.spared).toEqual([{ rule: expect.objectContaining({ name: 'smtp', line: 15 }), except: { file: 'examples/postfix-only-smtp.yaml', line: 18, col: 13 } }]);
    const www = await run(['explain', 'examples/postfix-only-smtp.yaml', '--to', '2001:db8:4001:c02::1a', '--port', 'tcp/25', '--user', 'www-data', '--json'], { cwd: ROOT });
    expect(resultOf(www.stdout, 'explain', www.code)[0]!.spared).toBeUndefined();
  });

  test('audit mode reports what enforce would do', async () => {
    const dir = tmp();
    writeFileSync(join(dir, 'p.yaml'), 'version: 1\nmode: audit\nallow:\n  - name: a\n    reason: r\n    to: [192.0.2.1]\n');
    const r = await run(['explain', 'p.yaml', '--to', '192.0.2.2', '--json'], { cwd: dir });
    expect(envelope(r.stdout, 'explain', r.code)).toMatchObject({ verdict: 'reject', audit: true, result: [{ verdict: 'reject', audit: true }] });
  });

  test('a hostname is explained for each of its addresses', async () => {
    const { fixedResolver } = await import('../helpers.js');
    const resolver = fixedResolver({
      'security.ubuntu.com': { ipv4: ['203.0.113.91'], ipv6: ['2001:db8:91::1'] },
      'us.archive.ubuntu.com': { ipv4: ['203.0.113.93'] },
    });
    const r = await run(['explain', 'examples/apt-only.yaml', '--to', 'security.ubuntu.com', '--port', 'tcp/443', '--json'], { cwd: ROOT, resolver });
    const answers = resultOf(r.stdout, 'explain', r.code);
    expect(answers.map((a) => [a.flow.family, a.verdict])).toEqual([
      ['ipv4', 'accept'],
      ['ipv6', 'accept'],
    ]);
  });

  test('--flows answers a file of flows (CSV with header and JSON lines)', async () => {
    const dir = tmp();
    writeFileSync(
      join(dir, 'flows.csv'),
      'to,port,user\n2001:db8::25,tcp/25,www-data\n192.0.2.25,tcp/25,postfix\n{"to": "192.0.2.9", "port": "tcp/587", "user": "33"}\n',
    );
    const r = await run(['explain', join(ROOT, 'examples/postfix-only-smtp.yaml'), '--flows', 'flows.csv', '--json'], { cwd: dir });
    expect(r.code).toBe(0);
    const lines = resultOf(r.stdout, 'explain', r.code);
    expect(lines.map((l) => [l.line, l.verdict])).toEqual([
      [2, 'reject'],
      [3, 'accept'],
      [4, 'reject'],
    ]);
    const table = await run(['explain', join(ROOT, 'examples/postfix-only-smtp.yaml'), '--flows', 'flows.csv'], { cwd: dir });
    expect(table.stdout).toMatch(/^line\s+flow\s+verdict\s+decided by/);
  });

  test('a bad line in --flows is reported with its line number and exits 1', async () => {
    const dir = tmp();
    writeFileSync(join(dir, 'f.csv'), 'to,port\n192.0.2.1,tcp/80\nnot-an-address,tcp/80\n');
    const r = await run(['explain', join(ROOT, 'examples/postfix-only-smtp.yaml'), '--flows', 'f.csv'], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^f\.csv:3: error: /m);
  });
});

describe('spawned', () => {
  test('bin/egress.js runs the built CLI with real exit codes', () => {
    execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: ROOT, stdio: 'ignore' });
    const ok = spawnSync(process.execPath, ['bin/egress.js', 'check', 'examples/postfix-only-smtp.yaml', '--silence', 'unknown-user'], { cwd: ROOT, encoding: 'utf8' });
    expect(ok.status).toBe(0);
    expect(ok.stdout).toBe('examples/postfix-only-smtp.yaml: ok (0 allow, 1 deny rule; 0 warnings)\n');
    const bad = spawnSync(process.execPath, ['bin/egress.js', 'check', 'test/diagnostics/many-errors.yaml'], { cwd: ROOT, encoding: 'utf8' });
    expect(bad.status).toBe(1);
    expect(bad.stderr.split('\n')[0]).toBe('test/diagnostics/many-errors.yaml:2:7: error: "mode" in the policy must be one of enforce, audit, not the string "enforced"');
    const usage = spawnSync(process.execPath, ['bin/egress.js', 'compile', 'examples/postfix-only-smtp.yaml'], { cwd: ROOT, encoding: 'utf8' });
    expect(usage.status).toBe(2);
    expect(usage.stderr).toBe("egress: error: required option '--target <target>' not specified\n");
  });
});
