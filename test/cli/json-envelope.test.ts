/**
 * `--json`: one envelope `{ ok, command, version, result, diagnostics }` for
 * every command that takes it, success or failure, usage errors included
 * (src/cli/envelope.ts, docs/json.md). The results of the commands that need
 * a kernel are validated where those are run (the kernel tests read their
 * output through test/json.ts too).
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { buildProgram } from '../../src/cli/main.js';
import type { JsonCommand } from '../../src/cli/envelope.js';
import { VERSION } from '../../src/cli/version.js';
import { tempDir } from '../helpers.js';
import { envelope, resultOf } from '../json.js';
import { ROOT } from '../paths.js';
import { run } from './run.js';

/** The commands whose --help lists --json, from the command table itself. */
const JSON_COMMANDS = buildProgram({ stdout: () => {}, stderr: () => {}, env: {}, cwd: ROOT }, () => {})
  .commands.filter((c) => c.options.some((o) => o.long === '--json'))
  .map((c) => c.name() as JsonCommand);

const EXAMPLE = 'examples/postfix-only-smtp.yaml';

describe('one envelope for every command that takes --json', () => {
  test('every such command has a schema, and the schemas are what src/cli/results.ts says', () => {
    expect(JSON_COMMANDS.length).toBeGreaterThanOrEqual(18);
    execFileSync(process.execPath, ['scripts/write-json-schemas.mjs', '--check'], { cwd: ROOT, stdio: 'pipe' });
  });

  test.each(JSON_COMMANDS)('%s: a usage error is an envelope too (exit 2, ok false, result null, a "usage" diagnostic)', async (command) => {
    // compile: its mandatory --target given, or commander says that first.
    const r = await run([command, ...(command === 'compile' ? ['--target', 'nft'] : []), '--json', '--no-such-option'], { cwd: ROOT });
    expect(r.code).toBe(2);
    const env = envelope(r.stdout, command, r.code);
    expect(env).toMatchObject({ ok: false, command, version: VERSION, result: null });
    expect(env.diagnostics).toEqual([{ severity: 'error', code: 'usage', message: "unknown option '--no-such-option'" }]);
    // People still read it on standard error.
    expect(r.stderr).toContain("unknown option '--no-such-option'");
  });

  test('a usage error the command finds itself (not commander) is an envelope', async () => {
    const r = await run(['explain', EXAMPLE, '--json'], { cwd: ROOT });
    expect(r.code).toBe(2);
    expect(envelope(r.stdout, 'explain', r.code).diagnostics).toEqual([{ severity: 'error', code: 'usage', message: 'explain needs --to ADDR (or --flows FILE)' }]);
  });

  test('without --json nothing is printed on standard output for a usage error', async () => {
    const r = await run(['check', '--no-such-option'], { cwd: ROOT });
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
  });

  test('a failure (a log that is not there) is an envelope with a "failed" diagnostic, not text', async () => {
    const r = await run(['stats', '/nonexistent/kern.log', '--json'], { cwd: ROOT });
    expect(r.code).toBe(1);
    const env = envelope(r.stdout, 'stats', r.code);
    expect(env.result).toBeNull();
    expect(env.diagnostics).toMatchObject([{ severity: 'error', code: 'failed', message: expect.stringContaining('/nonexistent/kern.log') }]);
  });

  test.each([
    ['check', ['check', 'BAD']],
    ['compile', ['compile', 'BAD', '--target', 'nft']],
    ['explain', ['explain', 'BAD', '--to', '192.0.2.1']],
    ['stale', ['stale', 'BAD']],
    ['replay', ['replay', 'BAD', 'LOG']],
    ['learn', ['learn', 'LOG', '--policy', 'BAD']],
    ['stats', ['stats', 'LOG', '--policy', 'BAD']],
    ['report', ['report', 'BAD', 'LOG', '--output', 'r.html']],
  ] as [JsonCommand, string[]][])('%s: an invalid policy is an envelope with its findings at FILE:LINE:COL (and no result but check\'s)', async (command, args) => {
    const dir = tempDir('egress-json-');
    writeFileSync(join(dir, 'BAD'), 'version: 1\nallow:\n  - name: a\n    reason: r\n    to: [192.0.2.1]\n    prots: [tcp/443]\n');
    writeFileSync(join(dir, 'LOG'), '');
    const r = await run([...args, '--json'], { cwd: dir });
    expect(r.code).toBe(1);
    const env = envelope(r.stdout, command, r.code);
    // check's result is the check itself (its counts); the others have none.
    if (command === 'check') expect(env.result).toMatchObject({ file: 'BAD', errors: 1 });
    else expect(env.result).toBeNull();
    expect(env.diagnostics).toContainEqual(expect.objectContaining({ severity: 'error', code: 'unknown-key', file: 'BAD', line: 6, col: 5 }));
    expect(r.stderr).toBe('');
  });

  test('check: the counts in result, the findings in diagnostics', async () => {
    const r = await run(['check', 'test/diagnostics/host-bits.yaml', '--json'], { cwd: ROOT });
    const env = envelope(r.stdout, 'check', r.code);
    expect(env).toMatchObject({ ok: true, result: { file: 'test/diagnostics/host-bits.yaml', errors: 0 } });
    expect(env.result!.warnings).toBe(env.diagnostics.length);
    expect(env.diagnostics.every((d) => d.severity === 'warning' && d.file === 'test/diagnostics/host-bits.yaml' && d.line! > 0)).toBe(true);
  });

  test('compile: the ruleset text is the result', async () => {
    const text = await run(['compile', EXAMPLE, '--target', 'nft'], { cwd: ROOT });
    const r = await run(['compile', EXAMPLE, '--target', 'nft', '--json'], { cwd: ROOT });
    expect(resultOf(r.stdout, 'compile', r.code)).toEqual({ target: 'nft', text: text.stdout });
  });

  test('explain is always a list of answers: one flow, a name with two addresses, a file of flows; flow.dst as lab and stats say it', async () => {
    const one = resultOf((await run(['explain', EXAMPLE, '--to', '192.0.2.25', '--port', 'tcp/25', '--json'], { cwd: ROOT })).stdout, 'explain');
    expect(one).toHaveLength(1);
    expect(one[0]!.flow).toMatchObject({ family: 'ipv4', dst: '192.0.2.25', proto: 'tcp', port: 25 });
    const dir = tempDir('egress-json-');
    writeFileSync(join(dir, 'flows.csv'), 'to,port\n192.0.2.25,tcp/25\nnot-an-address,tcp/80\n2001:db8::25,tcp/25\n');
    const r = await run(['explain', join(ROOT, EXAMPLE), '--flows', 'flows.csv', '--json'], { cwd: dir });
    // A bad row: exit 1, the others answered, the row's error in diagnostics at its line (not on standard error).
    expect(r.code).toBe(1);
    const env = envelope(r.stdout, 'explain', r.code);
    expect(env.result!.map((a) => [a.line, a.flow.dst])).toEqual([
      [2, '192.0.2.25'],
      [4, '2001:db8::25'],
    ]);
    expect(env.diagnostics).toMatchObject([{ severity: 'error', code: 'flow', file: 'flows.csv', line: 3 }]);
    // Several answers: no verdict beside the envelope's fields (which one would it be?).
    expect(env).not.toHaveProperty('verdict');
    expect(r.stderr).toBe('');
  });

  test('init: where it wrote, or the text with "-"', async () => {
    const dir = tempDir('egress-json-');
    const w = await run(['init', 'p.yaml', '--json'], { cwd: dir });
    expect(resultOf(w.stdout, 'init', w.code)).toEqual({ file: 'p.yaml', written: true });
    const p = await run(['init', '-', '--json'], { cwd: dir });
    const r = resultOf(p.stdout, 'init', p.code);
    expect(r).toMatchObject({ file: '-', written: false });
    expect(r.policy).toMatch(/^# egress policy/m);
  });

  test('report: the page written and the data drawn on it; --json with --output - is a usage error', async () => {
    const dir = tempDir('egress-json-');
    writeFileSync(join(dir, 'p.yaml'), 'version: 1\nmode: audit\nallow:\n  - name: a\n    reason: r\n    to: [192.0.2.1]\n');
    writeFileSync(join(dir, 'kern.log'), 'Nov 23 09:00:00 host kernel: [1.0] EGRESS p:- IN= OUT=eth0 SRC=192.0.2.9 DST=198.51.100.7 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=1 DF PROTO=TCP SPT=40000 DPT=25 WINDOW=64240 RES=0x00 SYN URGP=0 UID=33 GID=33\n');
    const r = await run(['report', 'p.yaml', 'kern.log', '--output', 'r.html', '--json'], { cwd: dir });
    const res = resultOf(r.stdout, 'report', r.code);
    expect(res).toMatchObject({ file: join(dir, 'r.html'), data: { policy: { file: 'p.yaml', mode: 'audit' } } });
    expect(res.bytes).toBeGreaterThan(1000);
    const dash = await run(['report', 'p.yaml', 'kern.log', '--output', '-', '--json'], { cwd: dir });
    expect(dash.code).toBe(2);
    expect(envelope(dash.stdout, 'report', dash.code).diagnostics[0]!.code).toBe('usage');
  });
});
