import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { FileRefused, readBounded } from './read-file.js';
import { tempDir } from '../../test/helpers.js';

const dir = () => tempDir('egress-read-');

describe('readBounded', () => {
  test('reads a regular file whole', () => {
    const p = join(dir(), 'a.txt');
    writeFileSync(p, 'x'.repeat(200_000));
    expect(readBounded(p, 1 << 20).length).toBe(200_000);
  });

  test('refuses a file longer than the limit by its size', () => {
    const p = join(dir(), 'a.txt');
    writeFileSync(p, 'x'.repeat(2048));
    expect(() => readBounded(p, 1024)).toThrow(FileRefused);
  });

  test('refuses a file whose size says 0 but which reads longer (/proc)', () => {
    expect(() => readBounded('/proc/self/maps', 16)).toThrow(/more than/);
  });

  test.each([
    ['/dev/zero', /a character device/],
    ['/dev/urandom', /a character device/],
  ])('refuses %s at once instead of reading forever', (p, why) => {
    expect(() => readBounded(p, 1 << 20)).toThrow(why);
  });

  test('refuses a directory', () => {
    const d = join(dir(), 'd');
    mkdirSync(d);
    expect(() => readBounded(d, 1 << 20)).toThrow(/a directory/);
  });

  test('refuses a FIFO without waiting for a writer', () => {
    const p = join(dir(), 'fifo');
    execFileSync('mkfifo', [p]);
    expect(() => readBounded(p, 1 << 20)).toThrow(/a FIFO/);
  });

  test('passes errors of open on as they are (errno words come from errnoText)', () => {
    expect(() => readBounded(join(dir(), 'missing'), 10)).toThrow(expect.objectContaining({ code: 'ENOENT' }));
  });
});
