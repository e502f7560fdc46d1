import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { RotatingLog } from './log-file.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'egress-log-file-'));
  dirs.push(d);
  return d;
}

describe('RotatingLog', () => {
  test('renames to .1 at the cap, keeps one old file, loses no line of the last two', async () => {
    const path = join(tmp(), 'dns-forwarder.log');
    const log = new RotatingLog(path, 100);
    const lines = Array.from({ length: 30 }, (_, i) => `{"n":${String(i).padStart(2, '0')}}`); // 9 bytes with the newline: 11 a file
    for (const l of lines) log.write(l);
    log.close();
    expect(statSync(path).size).toBeLessThanOrEqual(100);
    expect(statSync(`${path}.1`).size).toBeLessThanOrEqual(100);
    const kept = (readFileSync(`${path}.1`, 'utf8') + readFileSync(path, 'utf8')).trimEnd().split('\n');
    expect(kept).toEqual(lines.slice(30 - kept.length));
    expect(kept.length).toBe(11 + 8); // 0-10 dropped with the first rotation, 11-21 in .1, 22-29 in the file
  });

  test('counts what was there before it started', async () => {
    const path = join(tmp(), 'dns-forwarder.log');
    writeFileSync(path, 'x'.repeat(95) + '\n');
    const log = new RotatingLog(path, 100);
    log.write('{"a":1}');
    log.close();
    expect(readFileSync(`${path}.1`, 'utf8')).toBe('x'.repeat(95) + '\n');
    expect(readFileSync(path, 'utf8')).toBe('{"a":1}\n');
  });

  test('lines are written in batches: after the flush interval, or at close', async () => {
    const path = join(tmp(), 'dns-forwarder.log');
    const log = new RotatingLog(path, 1000);
    log.write('{"a":1}');
    expect(readFileSync(path, 'utf8')).toBe('');
    await expect.poll(() => readFileSync(path, 'utf8')).toBe('{"a":1}\n');
    log.write('{"a":2}');
    log.close();
    expect(readFileSync(path, 'utf8')).toBe('{"a":1}\n{"a":2}\n');
  });

  test('under the cap nothing is renamed', async () => {
    const path = join(tmp(), 'dns-forwarder.log');
    const log = new RotatingLog(path, 1000);
    log.write('{"a":1}');
    log.close();
    expect(existsSync(`${path}.1`)).toBe(false);
  });
});
