import { describe, expect, test } from 'vitest';
import type { IrDns } from '../ir/types.js';
import { forwarderUpstream } from './forwarder.js';

const dns = (upstream: IrDns['upstream']): IrDns => ({
  upstream,
  graceSec: 60,
  minLifetimeSec: 10,
  listen: [{ address: '127.0.0.153', port: 153 }],
  forwarder: { name: 'egress-dns' },
  refused: [],
  span: { file: 'p.yaml', start: 0, end: 0 },
});

describe('the upstream servers of the DNS forwarder', () => {
  test.each([
    ['dns.upstream wins over the files', [{ address: '192.0.2.53', port: 5353 }], { '/etc/resolv.conf': 'nameserver 198.51.100.53\n' }, [{ address: '192.0.2.53', port: 5353 }]],
    ["resolv.conf's servers, a loopback stub skipped", [], { '/etc/resolv.conf': 'nameserver 127.0.0.53\nnameserver 198.51.100.53\nnameserver 2001:db8::53\n' }, [{ address: '198.51.100.53', port: 53 }, { address: '2001:db8::53', port: 53 }]],
    ["only a stub in resolv.conf: systemd-resolved's servers", [], { '/etc/resolv.conf': 'nameserver 127.0.0.53\n', '/run/systemd/resolve/resolv.conf': 'nameserver 203.0.113.53\n' }, [{ address: '203.0.113.53', port: 53 }]],
    ['nothing anywhere: none (apply refuses)', [], { '/etc/resolv.conf': 'nameserver ::1\n' }, []],
  ] as const)('%s', (_, upstream, files, want) => {
    expect(forwarderUpstream(dns([...upstream]), (p) => (files as Record<string, string>)[p] ?? '')).toEqual(want);
  });
});
