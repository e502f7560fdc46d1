import { describe, expect, test } from 'vitest';
import { nameservers, upstreamFromSystem } from './resolvconf.js';
import { procHex, socketUid, uidFromTable, UidLookup } from './uid.js';

describe('upstreamFromSystem', () => {
  const stub = '# systemd-resolved stub\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch example.com\n';
  const resolved = 'nameserver 192.0.2.53\nnameserver 2001:db8::53\nnameserver 192.0.2.53\n';

  test.each([
    ['plain resolv.conf', 'nameserver 192.0.2.1\nnameserver 2001:db8::1 # second\n', undefined, ['192.0.2.1', '2001:db8::1']],
    ['the loopback stub falls through to systemd-resolved', stub, resolved, ['192.0.2.53', '2001:db8::53']],
    ['stub and no systemd-resolved file', stub, undefined, []],
    ['loopback of every spelling is skipped', 'nameserver 127.0.0.1\nnameserver ::1\nnameserver ::ffff:127.0.0.53\nnameserver 0.0.0.0\n', 'nameserver 198.51.100.1', ['198.51.100.1']],
    ['junk lines and hostnames are ignored', 'nameserver dns.example\nnameserver\nnameserver 192.0.2.300\n  nameserver 192.0.2.9  \n;nameserver 192.0.2.8\n', undefined, ['192.0.2.9']],
    ['a non-loopback resolv.conf wins over systemd-resolved', 'nameserver 203.0.113.5\n', resolved, ['203.0.113.5']],
  ])('%s', (_, conf, res, want) => {
    expect(upstreamFromSystem(conf, res).map((e) => e.address)).toEqual(want);
  });

  test('port 53', () => expect(nameservers('nameserver 192.0.2.1')).toEqual([{ address: '192.0.2.1', port: 53 }]));
});

describe('uid of a local socket', () => {
  const table = [
    '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops',
    '14588: 0100007F:A348 00000000:0000 07 00000000:00000000 00:00000000 00000000  1001        0 546194 2 0000 0',
    '14589: 00000000:A349 00000000:0000 07 00000000:00000000 00:00000000 00000000  1002        0 546195 2 0000 0',
  ].join('\n');

  test('procHex writes words in host byte order', () => {
    expect(procHex('127.0.0.1', true)).toBe('0100007F');
    expect(procHex('127.0.0.1', false)).toBe('7F000001');
    expect(procHex('::1', true)).toBe('00000000000000000000000001000000');
    expect(procHex('2001:db8::1', true)).toBe('B80D0120000000000000000001000000');
  });

  test('by address and port, then the wildcard the socket was bound to', async () => {
    expect(uidFromTable(table, '127.0.0.1', 0xa348, true)).toBe(1001);
    expect(uidFromTable(table, '127.0.0.1', 0xa349, true)).toBeUndefined();
    const read = async (p: string) => (p === '/proc/net/udp' ? table : '');
    if (procHex('127.0.0.1') === '0100007F') {
      expect(await socketUid('udp', '127.0.0.1', 0xa348, read)).toBe(1001);
      expect(await socketUid('udp', '127.0.0.1', 0xa349, read)).toBe(1002);
    }
    expect(await socketUid('udp', '127.0.0.1', 1, read)).toBeUndefined();
    expect(await socketUid('tcp', 'not an address', 1, read)).toBeUndefined();
  });
});

describe('UidLookup', () => {
  test('one read in flight; queries arriving meanwhile share the next one', async () => {
    let reads = 0;
    let now = 10;
    const row = (port: number, uid: number) => `1: 0100007F:${port.toString(16).toUpperCase().padStart(4, '0')} 00000000:0000 07 0:0 0:0 0 ${uid} 0 1 2 0 0`;
    const table = ['head', row(1000, 7), row(1001, 8)].join('\n');
    const l = new UidLookup(async () => (reads++, table), () => now);
    const a = l.uid('udp', '127.0.0.1', 1000, 9); // starts read 1 at 10
    now = 11;
    const b = l.uid('udp', '127.0.0.1', 1001, 10.5); // arrived after read 1 started: waits for read 2
    const c = l.uid('udp', '127.0.0.1', 1001, 10.7); // shares read 2
    const got = await Promise.all([a, b, c]);
    if (procHex('127.0.0.1') === '0100007F') expect(got).toEqual([7, 8, 8]);
    expect(reads).toBe(2);
  });
});
