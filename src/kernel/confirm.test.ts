import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { armWatchdog, watchdogAlive } from './confirm.js';
import { fakeExecer, type DetachOptions } from './exec.js';
import { waitFor } from './lock.js';

describe('the process watchdog', () => {
  test('is detached through the Execer: egress _auto-rollback with the token, the state dir in its environment, its log in the state dir', async () => {
    const detached: { argv: string[]; opts: DetachOptions }[] = [];
    // This test process stands in for the watchdog, so its start time can be read like the real one's.
    const x = { ...fakeExecer(), detach: (cmd: string, args: readonly string[], opts: DetachOptions) => (detached.push({ argv: [cmd, ...args], opts }), { pid: process.pid }) };
    const w = await armWatchdog(x, 'process', ['/usr/bin/node', '/opt/egress/bin/egress.js'], '/var/lib/egress-test', 'abc123', 30);
    expect(detached).toEqual([
      {
        argv: ['/usr/bin/node', '/opt/egress/bin/egress.js', '_auto-rollback', '--token', 'abc123'],
        opts: { logPath: '/var/lib/egress-test/watchdog.log', env: { EGRESS_STATE_DIR: '/var/lib/egress-test', EGRESS_WATCHDOG_CHILD: '1' }, cwd: '/' },
      },
    ]);
    expect(w).toMatchObject({ kind: 'process', pid: process.pid, start: expect.stringMatching(/^\d+$/) });
  });

  test('a watchdog that cannot be started fails the apply instead of leaving it unguarded', async () => {
    await expect(armWatchdog(fakeExecer(), 'process', ['/usr/bin/node', 'egress'], '/tmp/x', 't', 30)).rejects.toThrow('cannot start the rollback watchdog');
  });

  test('a killed watchdog not yet reaped (a zombie) is gone, not alive: the next command rolls back', async () => {
    // `sleep 0` backgrounded by a shell that then becomes `sleep 60`, which never reaps it: a zombie for a minute.
    const parent = spawn('sh', ['-c', 'sleep 0 & echo $!; exec sleep 60'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const pid = Number(await new Promise<string>((r) => parent.stdout!.once('data', (b: Buffer) => r(b.toString().trim()))));
      const state = () => {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        return stat.slice(stat.lastIndexOf(')') + 2)[0];
      };
      expect(await waitFor(() => state() === 'Z', 5000)).toBe(true);
      expect(await watchdogAlive(fakeExecer(), { kind: 'process', pid })).toBe(false);
    } finally {
      parent.kill('SIGKILL');
    }
  });
});
