import { describe, expect, test } from 'vitest';
import { loadPolicyText } from '../index.js';
import { staticResolver } from '../resolve/resolver.js';
import { checkLockout, parseSshConnection } from './lockout.js';

const SSH = { SSH_CONNECTION: '198.51.100.7 51234 192.0.2.10 22' };

async function ir(body: string) {
  const l = await loadPolicyText('p.yaml', `version: 1\n${body}`, { resolver: staticResolver({}), now: new Date('2026-06-01') });
  if (!l.ir) throw new Error(JSON.stringify(l.diagnostics));
  return l;
}

describe('parseSshConnection', () => {
  test.each([
    [{}, undefined],
    [{ SSH_CONNECTION: 'garbage' }, undefined],
    [SSH, { peer: '198.51.100.7', peerPort: 51234, local: '192.0.2.10', localPort: 22, family: 'ipv4' }],
    [{ SSH_CONNECTION: 'fe80::1%eth0 40000 fe80::2%eth0 22' }, { peer: 'fe80::1', peerPort: 40000, family: 'ipv6' }],
  ])('%j', (env, want) => {
    const s = parseSshConnection(env);
    if (want === undefined) expect(s).toBeUndefined();
    else expect(s).toMatchObject(want);
  });
});

describe('checkLockout', () => {
  const session = parseSshConnection(SSH)!;

  test.each([
    ['the established builtin keeps the session', 'default: reject\n', false],
    ['established off and nothing admits the peer', 'default: reject\nbuiltins:\n  established: false\n', true],
    ['established off but an allow admits the peer', 'default: reject\nbuiltins:\n  established: false\nallow:\n  - name: admin\n    reason: r\n    to: [198.51.100.0/24]\n    ports: [tcp]\n', false],
    ['audit mode blocks nothing', 'mode: audit\ndefault: reject\nbuiltins:\n  established: false\n', false],
    ['default accept', 'default: accept\nbuiltins:\n  established: false\n', false],
  ])('%s', async (_name, body, risky) => {
    const l = await ir(body);
    expect(checkLockout(l.ir!, session, l.policy) !== undefined).toBe(risky);
  });

  test('a deny rule covering the peer is named, with its span, even with established on', async () => {
    const body = 'default: accept\nbuiltins:\n  established: false\ndeny:\n  - name: lab\n    reason: r\n    to: [198.51.100.0/24]\n';
    const l = await ir(body);
    const r = checkLockout(l.ir!, session, l.policy)!;
    expect(r.message).toMatch(/deny rule "lab"/);
    // The span is the rule's name in the file (ir() puts "version: 1\n" first).
    const at = 'version: 1\n'.length + body.indexOf('lab');
    expect(r.span).toEqual({ file: 'p.yaml', start: at, end: at + 'lab'.length });
  });

  test('the disabled builtin is pointed at', async () => {
    const l = await ir('default: reject\nbuiltins:\n  established: false\n');
    const r = checkLockout(l.ir!, session, l.policy)!;
    expect(r.message).toMatch(/^this policy would cut your SSH session/);
    expect(r.span).toEqual(l.policy!.spans.builtins.established);
  });
});
