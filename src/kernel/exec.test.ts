import { describe, expect, test } from 'vitest';
import { commandLine, describeFailure, fakeExecer, realExecer } from './exec.js';

describe('commandLine', () => {
  test.each([
    [{}, ['nft', '-f', '-']],
    [{ netns: 'egress-x-h0' }, ['ip', 'netns', 'exec', 'egress-x-h0', 'nft', '-f', '-']],
    [{ uid: 33, gid: 33 }, ['setpriv', '--reuid', '33', '--regid', '33', '--clear-groups', '--', 'nft', '-f', '-']],
    [{ netns: 'n', uid: 7 }, ['ip', 'netns', 'exec', 'n', 'setpriv', '--reuid', '7', '--clear-groups', '--', 'nft', '-f', '-']],
  ])('%j', (opts, argv) => {
    expect(commandLine('nft', ['-f', '-'], opts)).toEqual(argv);
  });
});

describe('realExecer', () => {
  const x = realExecer();
  test('passes argv without a shell and stdin through', async () => {
    const r = await x.run(process.execPath, ['-e', 'process.stdin.pipe(process.stdout); process.stderr.write(process.argv[1])', '$(echo no) ; *'], { input: 'hello' });
    expect(r).toEqual({ code: 0, stdout: 'hello', stderr: '$(echo no) ; *' });
  });
  test('reports the exit status', async () => {
    expect((await x.run(process.execPath, ['-e', 'process.exit(3)'])).code).toBe(3);
  });
  test('a missing program is exit 127 with a message, not a throw', async () => {
    const r = await x.run('egress-no-such-program', []);
    expect(r.code).toBe(127);
    expect(r.stderr).toMatch(/cannot run egress-no-such-program/);
  });
  test('kills on timeout', async () => {
    const r = await x.run(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { timeoutMs: 100 });
    expect(r.timedOut).toBe(true);
    expect(r.code).toBe(137);
  });
  test('start: lines in, lines out, stop', async () => {
    const s = x.start(process.execPath, ['-e', "require('readline').createInterface({input: process.stdin}).on('line', l => console.log('got ' + l)); console.log('ready')"]);
    expect(await s.nextLine()).toBe('ready');
    s.write('a\n');
    expect(await s.nextLine()).toBe('got a');
    await s.stop();
    await expect(s.nextLine()).rejects.toThrow(/exited/);
  });
  test("start with lines: 'stderr' reads stderr lines; stdout goes to the exit result", async () => {
    const s = x.start(process.execPath, ['-e', "process.stdout.write('out\\n'); require('readline').createInterface({input: process.stdin}).on('line', l => process.stderr.write('err ' + l + '\\n'))"], { lines: 'stderr' });
    s.write('a\nb\n');
    expect(await s.nextLine()).toBe('err a');
    expect(await s.nextLine()).toBe('err b');
    const r = await s.stop();
    expect(r.stdout).toBe('out\n');
  });
});

describe('fakeExecer', () => {
  test('records calls and answers', async () => {
    const x = fakeExecer((c) => (c.argv.includes('fail') ? { code: 1, stderr: 'no' } : { stdout: 'ok' }));
    expect(await x.run('nft', ['list'], { netns: 'n' })).toEqual({ code: 0, stdout: 'ok', stderr: '' });
    expect((await x.run('nft', ['fail'])).code).toBe(1);
    expect(x.calls.map((c) => c.argv)).toEqual([['ip', 'netns', 'exec', 'n', 'nft', 'list'], ['nft', 'fail']]);
  });
});

test('describeFailure', () => {
  expect(describeFailure(['nft', '-f', '-'], { code: 1, stdout: '', stderr: 'Error: x\nline2\n' })).toBe('nft -f -: exit 1: Error: x; line2');
  expect(describeFailure(['sleep'], { code: 137, stdout: '', stderr: '', timedOut: true })).toBe('sleep: timed out');
});
