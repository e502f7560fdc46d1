import { describe, expect, test } from 'vitest';
import { hostsFiles } from './world.js';

describe('hostsFiles', () => {
  test('files only, and no DNS, by default', () => {
    const f = hostsFiles([{ name: 'a.example', ipv4: ['192.0.2.1'], ipv6: [] }]);
    expect(f['nsswitch.conf']).toMatch(/^hosts: files$/m);
    expect(f['resolv.conf']).not.toMatch(/nameserver/);
  });

  test("with nameservers (dns.proxy): the world's servers, asked after the files", () => {
    const f = hostsFiles([], ['192.0.2.53', '2001:db8::53']);
    expect(f['nsswitch.conf']).toMatch(/^hosts: files dns$/m);
    expect(f['resolv.conf']).toMatch(/^nameserver 192\.0\.2\.53\nnameserver 2001:db8::53\n/m);
  });

  test('never a nameserver outside the documentation prefixes', () => {
    expect(() => hostsFiles([], ['9.9.9.9'])).toThrow(/not a documentation address/);
  });
});
