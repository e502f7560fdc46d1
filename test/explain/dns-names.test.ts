/**
 * `explain --to NAME` under dns.proxy: a name the forwarder publishes is
 * explained for an address it answered (in the rule's dynamic set), a name a
 * deny rule gives is refused, and a name nothing covers is judged as before.
 */
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { run } from '../cli/run.js';
import { fixedResolver } from '../helpers.js';
import { ROOT } from '../paths.js';
import { resultOf } from '../json.js';

const CASE = join(ROOT, 'test', 'golden', 'cases', 'dns-proxy');
const resolver = fixedResolver({
  'deb.debian.org': { ipv4: ['198.51.100.7'], ipv6: ['2001:db8:7::7'] },
  'mail.example.org': { ipv4: ['192.0.2.25'] },
  'a.cdn.example.com': { ipv4: ['203.0.113.9'] },
  'tracker.example.net': { ipv4: ['203.0.113.70'] },
  'other.example.org': { ipv4: ['203.0.113.71'] },
});

async function explain(to: string, ...flags: string[]) {
  const r = await run(['explain', 'policy.yaml', '--json', '--to', to, ...flags], { cwd: CASE, resolver });
  expect(r.code).toBe(0);
  return resultOf(r.stdout, 'explain', r.code);
}

describe('explain --to NAME with dns.proxy', () => {
  test('a wildcard name: the answered address is in the rule\'s set, so the flow is admitted', async () => {
    const [a] = await explain('a.cdn.example.com', '--port', 'tcp/443', '--user', 'www-data');
    expect(a).toMatchObject({
      verdict: 'accept',
      decidedBy: 'allow',
      rules: [{ name: 'mirrors' }],
      flow: { dst: '203.0.113.9' },
      dns: { name: 'a.cdn.example.com', answer: 'published', rules: [{ name: 'mirrors', line: 14 }] },
    });
    // The same address asked for directly: no answer has put it into any set.
    const [b] = await explain('203.0.113.9', '--port', 'tcp/443', '--user', 'www-data');
    expect(b).toMatchObject({ verdict: 'reject', decidedBy: 'default' });
    expect(b!.dns).toBeUndefined();
  });

  test('the rule\'s other selectors still apply to an answered address', async () => {
    const [a] = await explain('a.cdn.example.com', '--port', 'tcp/22', '--user', 'www-data');
    expect(a).toMatchObject({ verdict: 'reject', decidedBy: 'default', dns: { answer: 'published' } });
  });

  test('a name this machine cannot resolve is explained for an address the forwarder would answer, per family', async () => {
    const as = await explain('x.y.api.example.org', '--port', 'tcp/443', '--user', 'appuser');
    expect(as.map((a) => [a.verdict, a.flow.family, a.flow.dst])).toEqual([
      ['accept', 'ipv6', '(an address answered for x.y.api.example.org)'],
    ]);
  });

  test('a deny rule\'s name is answered REFUSED', async () => {
    const [a] = await explain('tracker.example.net', '--port', 'tcp/443');
    expect(a).toMatchObject({ verdict: 'reject', decidedBy: 'deny', rules: [{ name: 'ads' }], dns: { answer: 'refused', rules: [{ name: 'ads' }] } });
  });

  test('the bare domain of a wildcard is not covered by it', async () => {
    const r = await run(['explain', 'policy.yaml', '--to', 'cdn.example.com', '--port', 'tcp/443'], { cwd: CASE, resolver });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('cannot resolve "cdn.example.com"');
  });

  test('a name no rule gives is only forwarded, and the text says so', async () => {
    const r = await run(['explain', 'policy.yaml', '--to', 'other.example.org', '--port', 'tcp/443'], { cwd: CASE, resolver });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      [
        '203.0.113.71 tcp/443 as root (uid 0) [ipv4]',
        '  verdict: reject by no rule matched: the default',
        '  dns: "other.example.org" is answered through the forwarder; no rule names it, so its addresses are judged as they are',
        '',
      ].join('\n'),
    );
  });
});
