import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, test } from 'vitest';
import { dnsLogFiles, parseDnsLine, readDnsLog, type NameRecord } from './dns-log.js';
import { ReadError } from './read.js';

const dir = mkdtempSync(join(tmpdir(), 'egress-dns-log-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ANSWER = '{"time":"2026-11-29T03:01:20.123Z","event":"dns-answer","name":"WWW.Example.ORG","qtype":"AAAA","addresses":["2001:0db8:0000:0000:0000:0000:0000:0007"],"ttl":30,"proto":"udp","uid":1000}';
const PUBLISH = '{"time":"2026-11-29T03:01:21Z","event":"dns-publish","name":"deb.debian.org","qtype":"A","rules":["mirror"],"sets":["mirror_4"],"addresses":["192.0.2.14"],"ttl":5,"lifetime":65,"proto":"tcp"}';
const REFUSED = '{"time":"2026-11-29T03:01:22Z","event":"dns-refused","name":"evil.test","qtype":"A","rules":["no-evil"],"proto":"udp"}';
const WRITER = '{"time":"2026-11-29T03:01:00Z","event":"writer-up","pid":1234,"generation":1}';

describe('parseDnsLine', () => {
  test('the three forwarder records, addresses canonical, names lowercase', () => {
    expect(parseDnsLine(ANSWER)).toEqual({ time: Date.parse('2026-11-29T03:01:20.123Z'), kind: 'answer', name: 'www.example.org', qtype: 'AAAA', addresses: ['2001:db8::7'], ttl: 30, rules: [], uid: 1000, proto: 'udp' });
    expect(parseDnsLine(PUBLISH)).toMatchObject({ kind: 'publish', rules: ['mirror'], addresses: ['192.0.2.14'], ttl: 5, lifetime: 65, proto: 'tcp' });
    expect(parseDnsLine(REFUSED)).toMatchObject({ kind: 'refused', name: 'evil.test', rules: ['no-evil'], addresses: [] });
    expect(parseDnsLine(WRITER)).toBe('other');
  });

  test.each([
    ['not JSON', '{"time":"2026-11-29T03:01:20Z","event":"dns-ans'],
    ['an array', '[1,2]'],
    ['no event', '{"name":"x.test"}'],
    ['no name', '{"event":"dns-answer","proto":"udp","addresses":[]}'],
    ['bad proto', '{"event":"dns-answer","name":"x.test","proto":"icmp","addresses":[]}'],
    ['a hostname as an address', '{"event":"dns-answer","name":"x.test","proto":"udp","addresses":["x.test"]}'],
    ['a prefix as an address', '{"event":"dns-answer","name":"x.test","proto":"udp","addresses":["192.0.2.0/24"]}'],
  ])('malformed: %s', (_, line) => {
    expect(parseDnsLine(line)).toHaveProperty('malformed');
  });
});

describe('readDnsLog', () => {
  test('reads the rotated file first, plain or gzip; malformed lines counted with where, not fatal; --since', async () => {
    const path = join(dir, 'dns-forwarder.log');
    writeFileSync(`${path}.1`, gzipSync(`${WRITER}\n${ANSWER}\n`));
    writeFileSync(path, `${PUBLISH}\n\nnot json\n${REFUSED}\n{"event":"dns-answer","name":"cut`);
    const files = dnsLogFiles(path);
    expect(files).toEqual([`${path}.1`, path]);
    const got: NameRecord[] = [];
    const c = await readDnsLog(
      files.map((p) => ({ path: p, name: p.slice(dir.length + 1) })),
      { since: Date.parse('2026-11-29T03:01:21Z') },
      (r) => got.push(r),
    );
    expect(got.map((r) => r.kind)).toEqual(['publish', 'refused']);
    expect(c).toMatchObject({ lines: 6, records: 2, other: 1, beforeSince: 1, malformed: 2, files: ['dns-forwarder.log.1', 'dns-forwarder.log'] });
    expect(c.problems).toEqual([
      { where: 'dns-forwarder.log', line: 3, reason: 'not a JSON object' },
      { where: 'dns-forwarder.log', line: 5, reason: 'not a JSON object' },
    ]);
  });

  test('no rotated file: only the log; none at all: nothing', () => {
    const path = join(dir, 'only.log');
    writeFileSync(path, `${ANSWER}\n`);
    expect(dnsLogFiles(path)).toEqual([path]);
    expect(dnsLogFiles(join(dir, 'absent.log'))).toEqual([]);
  });

  test('a file that cannot be read is a ReadError', async () => {
    await expect(readDnsLog([{ path: join(dir, 'absent.log'), name: 'absent.log' }], {}, () => {})).rejects.toBeInstanceOf(ReadError);
  });
});
