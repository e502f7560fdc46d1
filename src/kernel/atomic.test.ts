import { lstatSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { writeAll, writeFileAtomic } from './atomic.js';
import { tempDir } from '../../test/helpers.js';

const dir = () => tempDir('egress-atomic-');

describe('writeFileAtomic', () => {
  test('creates a file with the given mode and leaves no temporary file', () => {
    const d = dir();
    writeFileAtomic(join(d, 'egress.prom'), 'a 1\n', 0o600);
    expect(readFileSync(join(d, 'egress.prom'), 'utf8')).toBe('a 1\n');
    expect(statSync(join(d, 'egress.prom')).mode & 0o777).toBe(0o600);
    expect(readdirSync(d)).toEqual(['egress.prom']);
  });

  test('replaces an existing file whole', () => {
    const d = dir();
    writeFileSync(join(d, 'policy.yaml'), 'old text that is longer than the new\n');
    writeFileAtomic(join(d, 'policy.yaml'), 'new\n', 0o644);
    expect(readFileSync(join(d, 'policy.yaml'), 'utf8')).toBe('new\n');
    expect(readdirSync(d)).toEqual(['policy.yaml']);
  });

  test('a failed rename leaves the target as it was and removes the temporary file', () => {
    const d = dir();
    mkdirSync(join(d, 'taken'));
    writeFileSync(join(d, 'taken', 'inside'), 'kept');
    expect(() => writeFileAtomic(join(d, 'taken'), 'x', 0o644)).toThrow(/EISDIR|ENOTEMPTY|EEXIST/);
    expect(readdirSync(d)).toEqual(['taken']);
    expect(readFileSync(join(d, 'taken', 'inside'), 'utf8')).toBe('kept');
  });

  test('a missing directory is an error (nothing is created)', () => {
    const d = dir();
    expect(() => writeFileAtomic(join(d, 'nope', 'out.txt'), 'x', 0o644)).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    expect(readdirSync(d)).toEqual([]);
  });
});

describe('writeAll (D2: a short write was taken for a whole one)', () => {
  test('keeps writing after short writes until every byte is out', () => {
    const got: Buffer[] = [];
    writeAll(7, Buffer.from('0123456789'), (_fd, b, off, len) => {
      const n = Math.min(3, len);
      got.push(Buffer.from(b.subarray(off, off + n)));
      return n;
    });
    expect(Buffer.concat(got).toString()).toBe('0123456789');
  });

  test('a short write followed by a full disk is an error, not a cut file', () => {
    let calls = 0;
    const full = (_fd: number, _b: Buffer, _off: number, len: number) => {
      if (++calls > 1) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      return Math.floor(len / 2);
    };
    expect(() => writeAll(7, Buffer.from('x'.repeat(100)), full)).toThrow(/ENOSPC/);
  });
});

describe('links planted where root writes (D4)', () => {
  test('a link at the target is replaced, never written through: the file it points at is untouched', () => {
    const d = dir();
    writeFileSync(join(d, 'victim'), 'SECRET\n', { mode: 0o600 });
    symlinkSync(join(d, 'victim'), join(d, 'egress.prom'));
    writeFileAtomic(join(d, 'egress.prom'), 'a 1\n', 0o644);
    expect(readFileSync(join(d, 'victim'), 'utf8')).toBe('SECRET\n');
    expect(lstatSync(join(d, 'egress.prom')).isFile()).toBe(true);
  });
});
