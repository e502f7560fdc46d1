/**
 * The writer's protocol against a scripted stand-in for `nft -i` that
 * behaves as nft 1.0.6 was measured to (errors and the sentinel's syntax
 * error on stderr, in order). The real nft is in
 * test/kernel/dns-writer.kernel.test.ts.
 */
import { afterEach, describe, expect, test } from 'vitest';
import type { Execer, RunResult, Started, StartOptions } from '../kernel/exec.js';
import { elementProblem, NftWriter, packAddress, WriterError, type WriterEvent } from './nft-writer.js';
import type { Element } from './types.js';

/** A fake nft: holds each line until `release()` (or at once with auto), fails commands naming a set "bad". */
class FakeNft implements Started {
  pid = 4242;
  readonly commands: string[] = [];
  private out: string[] = [];
  private waiters: { resolve: (s: string) => void; reject: (e: Error) => void }[] = [];
  private held: string[] = [];
  private dead: RunResult | undefined;
  auto = true;
  readonly exited: Promise<RunResult>;
  private exit!: (r: RunResult) => void;

  constructor(readonly opts: StartOptions) {
    this.exited = new Promise((r) => (this.exit = r));
  }
  write(text: string): void {
    if (this.dead) return;
    for (const line of text.split('\n').filter(Boolean)) {
      this.held.push(line);
      if (this.auto) this.release();
    }
  }
  /** Process held lines. */
  release(): void {
    for (const line of this.held.splice(0)) {
      if (line.startsWith('egress-sync ')) this.emit('Error: syntax error, unexpected number, expecting string', line, '            ^');
      else {
        this.commands.push(line);
        if (/ bad /.test(line)) this.emit('Error: No such file or directory', line, '       ^^^');
      }
    }
  }
  private emit(...lines: string[]): void {
    for (const l of lines) {
      const w = this.waiters.shift();
      if (w) w.resolve(l);
      else this.out.push(l);
    }
  }
  nextLine(): Promise<string> {
    const l = this.out.shift();
    if (l !== undefined) return Promise.resolve(l);
    if (this.dead) return Promise.reject(new Error('nft exited'));
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }
  kill(): void {
    if (this.dead) return;
    this.dead = { code: 137, stdout: '', stderr: '' };
    for (const w of this.waiters.splice(0)) w.reject(new Error('nft exited (137)'));
    this.exit(this.dead);
  }
  async stop(): Promise<RunResult> {
    this.kill();
    return this.exited;
  }
}

function fakeExecer() {
  const children: FakeNft[] = [];
  const x: Execer & { children: FakeNft[] } = {
    children,
    run: async () => ({ code: 0, stdout: '', stderr: '' }),
    detach: () => ({ pid: undefined }),
    start: (_cmd, _args, opts = {}) => {
      const c = new FakeNft(opts);
      children.push(c);
      return c;
    },
  };
  return x;
}

const el = (address: string, set = 's4', timeoutSec = 70): Element => ({ set, family: address.includes(':') ? 'ipv6' : 'ipv4', address, timeoutSec });

const writers: NftWriter[] = [];
afterEach(async () => {
  for (const w of writers.splice(0)) await w.close();
});

function make(opts: Partial<ConstructorParameters<typeof NftWriter>[0]> = {}) {
  const x = fakeExecer();
  let now = 1_000_000;
  const events: WriterEvent[] = [];
  const w = new NftWriter({ execer: x, table: 'inet egress', refresh: 'readd', backoffMs: { min: 1, max: 4 }, now: () => now, onEvent: (e) => events.push(e), ...opts });
  writers.push(w);
  return { w, x, events, advance: (ms: number) => (now += ms) };
}

describe('NftWriter protocol', () => {
  test('starts nft -i reading stderr, with no history file; confirms by the sentinel', async () => {
    const { w, x } = make();
    await w.up();
    expect(x.children[0]!.opts).toMatchObject({ lines: 'stderr', env: { HOME: '/nonexistent/egress-nft-writer', LC_ALL: 'C' } });
    await w.publish([el('192.0.2.1'), el('2001:db8::1', 's6', 90)]);
    expect(x.children[0]!.commands).toEqual(['add element inet egress s4 { 192.0.2.1 timeout 70s }; add element inet egress s6 { 2001:db8::1 timeout 90s }']);
  });

  test('publishes that arrive while a command is in flight go out together as the next one', async () => {
    const { w, x } = make();
    await w.up();
    const nft = x.children[0]!;
    nft.auto = false;
    const first = w.publish([el('192.0.2.1')]);
    const rest = [w.publish([el('192.0.2.2')]), w.publish([el('192.0.2.3'), el('192.0.2.2', 's4', 100)])];
    nft.release();
    await first;
    nft.release();
    await Promise.all(rest);
    expect(nft.commands).toEqual(['add element inet egress s4 { 192.0.2.1 timeout 70s }', 'add element inet egress s4 { 192.0.2.2 timeout 100s, 192.0.2.3 timeout 70s }']);
  });

  test('a refused batch: each publish goes again alone, so only the bad one fails', async () => {
    const { w, x } = make();
    await w.up();
    const nft = x.children[0]!;
    nft.auto = false;
    const first = w.publish([el('192.0.2.1')]);
    const good = w.publish([el('192.0.2.2')]);
    const bad = w.publish([el('192.0.2.3', 'bad')]);
    nft.auto = true;
    nft.release();
    await first;
    await good;
    await expect(bad).rejects.toThrow(/nft refused the insert: Error: No such file or directory/);
    expect(nft.commands.slice(1)).toEqual([
      'add element inet egress s4 { 192.0.2.2 timeout 70s }; add element inet egress bad { 192.0.2.3 timeout 70s }',
      'add element inet egress s4 { 192.0.2.2 timeout 70s }',
      'add element inet egress bad { 192.0.2.3 timeout 70s }',
    ]);
  });

  test('a refresh never shortens what an earlier answer gave', async () => {
    const { w, x, advance } = make();
    await w.up();
    await w.publish([el('192.0.2.1', 's4', 3600)]);
    advance(600_000);
    await w.publish([el('192.0.2.1', 's4', 70)]);
    expect(x.children[0]!.commands[1]).toBe('add element inet egress s4 { 192.0.2.1 timeout 3000s }');
  });

  test("refresh: 'delete-readd' (the default) writes add; delete; add in one line, but a plain add for an element it knows is live", async () => {
    const { w, x, advance } = make({ refresh: undefined });
    await w.up();
    await w.publish([el('192.0.2.1'), el('192.0.2.2')]);
    // 60 s later 192.0.2.1 has 10 s left: a plain add; 192.0.2.3 is unknown: add; delete; add
    advance(60_000);
    await w.publish([el('192.0.2.1'), el('192.0.2.3')]);
    // 69 s in, 192.0.2.2 is 1 s from expiry: add; delete; add again
    advance(9_000);
    await w.publish([el('192.0.2.2')]);
    expect(x.children[0]!.commands).toEqual([
      'add element inet egress s4 { 192.0.2.1 timeout 70s, 192.0.2.2 timeout 70s }; delete element inet egress s4 { 192.0.2.1, 192.0.2.2 }; add element inet egress s4 { 192.0.2.1 timeout 70s, 192.0.2.2 timeout 70s }',
      'add element inet egress s4 { 192.0.2.1 timeout 70s, 192.0.2.3 timeout 70s }; delete element inet egress s4 { 192.0.2.3 }; add element inet egress s4 { 192.0.2.3 timeout 70s }',
      'add element inet egress s4 { 192.0.2.2 timeout 70s }; delete element inet egress s4 { 192.0.2.2 }; add element inet egress s4 { 192.0.2.2 timeout 70s }',
    ]);
  });

  test('remainingMs: what this writer confirmed, from the moment the command was built; 0 for what it did not confirm', async () => {
    const { w, x, advance } = make();
    await w.up();
    const nft = x.children[0]!;
    nft.auto = false;
    const first = w.publish([el('192.0.2.1', 's4', 70)]);
    // Sent, not yet confirmed: not known.
    expect(w.remainingMs('s4', '192.0.2.1')).toBe(0);
    advance(500);
    nft.release();
    await first;
    // Counted from when the command was built (500 ms ago), not from the confirmation.
    expect(w.remainingMs('s4', '192.0.2.1')).toBe(69_500);
    expect(w.remainingMs('s6', '192.0.2.1')).toBe(0);
    nft.auto = true;
    await expect(w.publish([el('192.0.2.2', 'bad')])).rejects.toThrow(/refused/);
    expect(w.remainingMs('bad', '192.0.2.2')).toBe(0);
    advance(70_000);
    expect(w.remainingMs('s4', '192.0.2.1')).toBe(0);
    // One element whatever the text form of its address.
    await w.publish([el('2001:db8::a', 's6', 90)]);
    expect(w.remainingMs('s6', '2001:DB8:0:0::A')).toBe(90_000);
    expect(w.remainingMs('s6', 'not an address')).toBe(0);
    expect(packAddress('192.0.2.1')).toBe('\xc0\x00\x02\x01');
  });

  test('child dies: pending publishes fail, new ones fail fast, then a restarted child takes them', async () => {
    const { w, x } = make();
    await w.up();
    x.children[0]!.auto = false;
    const pending = w.publish([el('192.0.2.1')]);
    x.children[0]!.kill();
    await expect(pending).rejects.toThrow(WriterError);
    await expect(w.publish([el('192.0.2.2')])).rejects.toThrow(/down/);
    await w.up();
    expect(x.children.length).toBe(2);
    await w.publish([el('192.0.2.3')]);
    expect(x.children[1]!.commands).toEqual(['add element inet egress s4 { 192.0.2.3 timeout 70s }']);
  });

  test('a stalled command kills the child', async () => {
    const { w, x } = make({ stallMs: 20 });
    await w.up();
    x.children[0]!.auto = false;
    await expect(w.publish([el('192.0.2.1')])).rejects.toThrow(/died/);
    await w.up();
    expect(x.children.length).toBe(2);
  });

  test('after recycleAfter commands a fresh child takes over between commands', async () => {
    const { w, x, events } = make({ recycleAfter: 3 });
    await w.up();
    for (let i = 1; i <= 3; i++) await w.publish([el(`192.0.2.${i}`)]);
    await expect.poll(() => events.filter((e) => e.event === 'writer-up').length).toBe(2);
    await w.publish([el('192.0.2.9')]);
    expect(x.children.length).toBe(2);
    expect(x.children[0]!.commands.length).toBe(3);
    expect(x.children[1]!.commands.slice(-1)).toEqual(['add element inet egress s4 { 192.0.2.9 timeout 70s }']);
  });

  test('nothing that is not an address, set name or timeout ever reaches nft', async () => {
    const { w, x } = make();
    await w.up();
    for (const bad of [el('192.0.2.300'), el('deb.debian.org'), { ...el('192.0.2.1'), family: 'ipv6' as const }, el('192.0.2.1', 's4 }; flush ruleset; add element inet egress s4 {'), el('192.0.2.1', 's4', 0), el('192.0.2.1', 's4', NaN)])
      await expect(w.publish([bad])).rejects.toThrow(WriterError);
    expect(x.children[0]!.commands).toEqual([]);
    expect(elementProblem(el('2001:db8::1', 'dns_mirror-6'))).toBeUndefined();
  });
});
