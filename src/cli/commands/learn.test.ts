import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { fakeExecer } from '../../kernel/exec.js';
import type { Status } from '../../kernel/status.js';
import { captureIo, tempDir } from '../../../test/helpers.js';
import { journal, TCP4 } from '../../../test/observe/lines.js';
import { learnCommand } from './learn.js';
import { jsonResult } from '../../../test/json.js';

const STATUS = { stateDir: '/x', applied: true, drift: false, interrupted: false, counters: [], backend: 'nft', mode: 'audit' } as unknown as Status;

describe('learn and the log rate limit', () => {
  test("reading this host's journal, learn says how many denials the limit kept out of the log (the kernel counted them)", async () => {
    const dir = tempDir('egress-learn-');
    writeFileSync(join(dir, 'policy.yaml'), 'version: 1\nmode: audit\ndefault: reject\nallow: []\n');
    const execer = fakeExecer(() => ({ stdout: [journal(`EGRESS p:- ${TCP4}`), ''].join('\n') }));
    const logging = { denials: 300, logged: 100, notLogged: 200, limit: '100/second burst 100' };
    const io = captureIo(dir);
    expect(await learnCommand(io, [], { policy: 'policy.yaml', journal: true }, { execer, status: async () => ({ ...STATUS, logging }), uid: 0 })).toBe(0);
    expect(io.err).toContain('200 of 300 denials since the ruleset was loaded were not logged (rate limit 100/second burst 100): learn cannot propose those flows');
    const j = captureIo(dir);
    await learnCommand(j, [], { policy: 'policy.yaml', journal: true, json: true }, { execer, status: async () => ({ ...STATUS, logging }), uid: 0 });
    expect(jsonResult(j.out, 'learn').logging).toEqual(logging);
    // A log file from elsewhere says nothing about this host's counters.
    writeFileSync(join(dir, 'kern.log'), '');
    const k = captureIo(dir);
    await learnCommand(k, ['kern.log'], { policy: 'policy.yaml' }, { execer, status: async () => ({ ...STATUS, logging }), uid: 0 });
    expect(k.err).not.toContain('not logged');
  });
});
