/** `egress check` with dns.proxy says which upstream servers the forwarder will ask, and where that list came from. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { staticResolver } from '../../src/resolve/resolver.js';
import { ACCOUNTS } from '../helpers.js';
import { run } from './run.js';
import { envelope } from '../json.js';

const dir = mkdtempSync(join(tmpdir(), 'egress-dns-check-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(join(dir, 'explicit.yaml'), 'version: 1\ndns: { proxy: true, upstream: ["192.0.2.53", "[2001:db8::53]:5353"] }\n');
writeFileSync(join(dir, 'system.yaml'), 'version: 1\ndns: { proxy: true }\n');

const resolverWith = (files: Record<string, string>) => staticResolver({}, files, ACCOUNTS);

describe('check: the forwarder\'s upstream', () => {
  test.each([
    ['dns.upstream', 'explicit.yaml', {}, 'explicit.yaml: dns: the forwarder will ask 192.0.2.53:53, [2001:db8::53]:5353 (dns.upstream)\n'],
    [
      "resolv.conf's non-loopback nameservers",
      'system.yaml',
      { '/etc/resolv.conf': 'nameserver 127.0.0.53\nnameserver 198.51.100.53\n' },
      'system.yaml: dns: the forwarder will ask 198.51.100.53:53 (from /etc/resolv.conf)\n',
    ],
    [
      "else systemd-resolved's",
      'system.yaml',
      { '/etc/resolv.conf': 'nameserver 127.0.0.53\n', '/run/systemd/resolve/resolv.conf': 'nameserver 203.0.113.53\nnameserver 2001:db8::35\n' },
      "system.yaml: dns: the forwarder will ask 203.0.113.53:53, [2001:db8::35]:53 (systemd-resolved's upstream servers; /etc/resolv.conf names only loopback ones)\n",
    ],
  ])('%s', async (_, file, files, line) => {
    const r = await run(['check', file], { cwd: dir, resolver: resolverWith(files) });
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')[1] + '\n').toBe(line);
    expect(r.stderr).toBe('');
  });

  test('none found is a warning, and --json carries the choice', async () => {
    const r = await run(['check', '--json', 'system.yaml'], { cwd: dir, resolver: resolverWith({ '/etc/resolv.conf': 'nameserver ::1\n' }) });
    expect(r.code).toBe(0);
    const out = envelope(r.stdout, 'check', r.code);
    expect(out.result!.dns).toEqual({ proxy: true, upstream: [], from: 'none' });
    expect(out.diagnostics.map((d) => [d.code, d.line])).toEqual([['no-dns-upstream', 2]]);
  });
});
