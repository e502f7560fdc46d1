/**
 * Campaign class 'logs' (issue 12): hostile log input through the real
 * commands stats, learn, replay and stale. Every trial is a file; the
 * standard (SPEC, docs/observe.md "Nothing in a log makes the command
 * fail"): exit 0 with every planted bad line counted where it is (malformed
 * with its line number, or `other`) and the good lines around it still
 * events; or, for an input that cannot be read, exit 1 with a plain error
 * naming it. Never a stack trace or "internal error", never a hang, memory
 * bounded.
 *
 * In-process (`run`) for the accounting; a compiled CLI (`buildCli`),
 * spawned with a timeout and its peak RSS read back, where a hang or memory
 * is the question (gzip bombs, 20–40 MB lines, devices, the parallel reader
 * that stats uses for 32 MiB and more).
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { constants as Z, createGzip, gunzipSync, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { run } from '../cli/run.js';
import { tempDir } from '../helpers.js';
import { buildCli } from '../kernel/lifecycle-env.js';
import { dmesg, dmesgT, FWD_TCP4, FWD_TCP6, FWD_UDP4, ICMP4, ICMP4_ERR, ICMP6, INBOUND, iso, journal, kmsg, ND6, syslog, TCP4, TCP6, UDP4, UDP4_NOUID } from '../observe/lines.js';
import { attack, expectNoCrash, sample, SEED } from './tally.js';
import { jsonResult } from '../json.js';

const CLS = 'logs';

const POLICY = `version: 1
mode: audit
default: reject
allow:
  - { name: ntp, reason: time, to: [192.0.2.123], ports: [udp/123] }
deny:
  - { name: smtp, reason: only the MTA, ports: [tcp/25], except: { user: 107 } }
`;

const dir = tempDir('egress-campaign-logs-');
const env = { EGRESS_STATE_DIR: join(dir, 'state') };
writeFileSync(join(dir, 'policy.yaml'), POLICY);

// ---------------------------------------------------------------------------
// Lines: good ones in every carrier, and planted ones with what they must count as.

type Expect = 'event' | 'malformed' | 'other' | 'inbound' | 'none';
interface Planted {
  line: string;
  expect: Expect;
  /** What the line is, for a failure's label. */
  what: string;
}

const MSGS = [TCP4, UDP4, ICMP4, TCP6, ICMP6, ND6, UDP4_NOUID, ICMP4_ERR, FWD_TCP4, FWD_TCP6, FWD_UDP4];
const TAGS = ['D:smtp', 'P:-', 'd:smtp', 'p:-', 'B:-', 'U:-', 'u:-', 'D:a-very-long-rule-name-cut~3f2'];
const CARRIERS: ((m: string) => string)[] = [
  (m) => syslog(m),
  (m) => iso(m, '2025-11-23T09:14:42.123456+01:00'),
  (m) => `<4>1 2025-11-23T09:14:42Z web1 kernel - - - ${m}`,
  (m) => dmesg(m),
  (m) => dmesgT(m, 'Sun Nov 23 09:14:42 2025'),
  (m) => kmsg(m),
  (m) => journal(m, 1795000000000000),
];
/** The i-th good line: a tagged netfilter line in one of the carriers. */
function good(i: number): string {
  return CARRIERS[i % CARRIERS.length]!(`EGRESS ${TAGS[i % TAGS.length]} ${MSGS[i % MSGS.length]}`);
}
/** A well-formed IPv4 TCP message behind the tag; the planted variants are cut from it. */
const MSG = `EGRESS D:smtp ${TCP4}`;
const carry = (i: number, m: string) => CARRIERS[i % 3]!(m); // syslog, ISO, RFC 5424: carriers with a header before the message

/** `n` good lines with the planted ones at the positions given (0-based among all lines). */
function assemble(planted: Planted[], goodCount: number, at: number[]): { text: string; lines: string[]; plantedAt: Map<number, Planted> } {
  const total = goodCount + planted.length;
  const positions = spread(at.slice(0, planted.length), total);
  const lines: string[] = [];
  const plantedAt = new Map<number, Planted>();
  let g = 0;
  for (let k = 0; k < total; k++) {
    const idx = positions.indexOf(k);
    if (idx >= 0) {
      lines.push(planted[idx]!.line);
      plantedAt.set(k, planted[idx]!);
    } else lines.push(good(g++));
  }
  return { text: lines.join('\n') + '\n', lines, plantedAt };
}

/** Distinct positions in [0, total) from sampled numbers (a collision takes the next free one). */
function spread(at: number[], total: number): number[] {
  const positions: number[] = [];
  for (const p of at.map((x) => x % total)) {
    let q = p;
    while (positions.includes(q)) q = (q + 1) % total;
    positions.push(q);
  }
  return positions;
}

interface Counts {
  lines: number;
  events: number;
  malformed: number;
  other: number;
  inbound: number;
  problems: { where: string; line: number; reason: string }[];
}

const COMMANDS = ['stats', 'learn', 'replay'] as const;
type Command = (typeof COMMANDS)[number];

function argv(cmd: Command, file: string): string[] {
  if (cmd === 'stats') return ['stats', file, '--json'];
  if (cmd === 'learn') return ['learn', file, '--policy', 'policy.yaml', '--json'];
  return ['replay', 'policy.yaml', file, '--json'];
}

/** Run one log command in-process on `file`; its read counts (exit 0 and no crash checked). */
async function countsOf(cmd: Command, file: string): Promise<{ c: Counts; out: unknown }> {
  const r = await run(argv(cmd, file), { cwd: dir, env });
  expectNoCrash(r.stdout + r.stderr);
  if (r.code !== 0) throw new Error(`${cmd} exited ${r.code}: ${r.stderr.slice(0, 400)}`);
  const j = jsonResult(r.stdout, cmd, r.code) as { lines?: Counts; stats?: { lines: Counts } };
  const c = cmd === 'replay' ? j.stats!.lines : j.lines!;
  return { c, out: j };
}

/** The accounting of a file holding `goodCount` good lines and `plantedAt` (by 0-based line). */
function expectAccounting(c: Counts, name: string, total: number, goodCount: number, plantedAt: Map<number, Planted>): void {
  const n = (e: Expect) => [...plantedAt.values()].filter((p) => p.expect === e).length;
  // As JSON text, so a failure shows every figure.
  const got = JSON.stringify({ lines: c.lines, events: c.events, malformed: c.malformed, other: c.other, inbound: c.inbound });
  const want = JSON.stringify({ lines: total, events: goodCount + n('event'), malformed: n('malformed'), other: n('other'), inbound: n('inbound') });
  if (got !== want) throw new Error(`counted ${got}, expected ${want}`);
  // Each malformed line is named where it is (the first 20).
  const bad = [...plantedAt].filter(([, p]) => p.expect === 'malformed').map(([k]) => k + 1);
  expect(c.problems.map((p) => [p.where, p.line])).toEqual(bad.slice(0, 20).map((l) => [name, l]));
}

let fileNo = 0;
/** One trial: the planted lines among good ones, through one of the three commands (in turn). */
async function plantTrial(planted: Planted[], i: number, seedPositions: number[]): Promise<void> {
  const goodCount = 3 + (i % 5);
  const { text, lines, plantedAt } = assemble(planted, goodCount, seedPositions);
  const name = `t${++fileNo}.log`;
  writeFileSync(join(dir, name), text);
  const cmd = COMMANDS[i % COMMANDS.length]!;
  const { c } = await countsOf(cmd, name);
  expectAccounting(c, name, lines.length, goodCount, plantedAt);
}

const label = (ps: Planted[]) => `seed ${SEED}: ${ps.map((p) => `${p.what} → ${p.expect}: …${JSON.stringify(p.line.slice(-70))}`).join(' | ')}`;

/** Trials of 1–4 planted lines each, at sampled positions. */
function trials(arb: fc.Arbitrary<Planted>, n: number, salt: number): { planted: Planted[]; at: number[] }[] {
  return sample(fc.record({ planted: fc.array(arb, { minLength: 1, maxLength: 4 }), at: fc.array(fc.nat(50), { minLength: 4, maxLength: 4 }) }), n, salt);
}

async function plantAttack(name: string, arb: fc.Arbitrary<Planted>, n: number, salt: number): Promise<void> {
  await attack(CLS, name, trials(arb, n, salt), (t) => label(t.planted), (t, i) => plantTrial(t.planted, i, t.at));
}

// --- malformed kernel lines --------------------------------------------------

const posOf = (s: string, what: string) => {
  const k = s.indexOf(what);
  if (k < 0) throw new Error(`no ${what}`);
  return k;
};
/** Cut anywhere from SRC= to the end of the DPT= value: no such line is whole. */
const cutFields = fc.tuple(fc.integer({ min: posOf(MSG, 'SRC='), max: posOf(MSG, ' WINDOW=') }), fc.nat()).map(([p, c]): Planted => ({ line: carry(c, MSG.slice(0, p)), expect: 'malformed', what: `cut at ${p}` }));
/** Cut inside UID=…GID= before the gid's first digit. */
const cutOwner = fc.tuple(fc.integer({ min: posOf(MSG, ' UID=') + 5, max: posOf(MSG, ' GID=') + 5 }), fc.nat()).map(([p, c]): Planted => ({ line: carry(c, MSG.slice(0, p)), expect: 'malformed', what: `cut owner at ${p}` }));

const badIpv4 = fc.oneof(
  fc.tuple(fc.integer({ min: 256, max: 99999 }), fc.nat(255), fc.nat(255), fc.nat(3)).map(([big, a, b, k]) => [big, a, b, a].map((x, j) => (j === k ? big : x)).join('.')),
  fc.array(fc.nat(255), { minLength: 1, maxLength: 3 }).map((xs) => xs.join('.')),
  fc.array(fc.nat(255), { minLength: 5, maxLength: 6 }).map((xs) => xs.join('.')),
  fc.tuple(fc.nat(255), fc.nat(255)).map(([a, b]) => `0${a}.${b}.0.1`),
  fc.constantFrom('', '.', '1..2.3', '198.51.100.7.', '0x7f.0.0.1', '198.51.100.-1', '198.51.100.7/32', 'example.com', '∞', '198.51.100.7\u0000'),
);
const badIpv6 = fc.oneof(
  fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 9, maxLength: 10 }).map((xs) => xs.map((x) => x.toString(16)).join(':')),
  fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 2, maxLength: 7 }).map((xs) => xs.map((x) => x.toString(16)).join(':')),
  fc.constantFrom(':::', '2001:db8::1::2', '2001:db8::g', '12345::1', 'fe80::1%eth0', '2001:0db8:0000:0000:0000:0000:0000:00999', '[2001:db8::1]', '::ffff:1.2.3'),
);
const badAddress = fc.tuple(fc.oneof(badIpv4, badIpv6), fc.constantFrom('DST', 'SRC'), fc.nat()).map(([a, f, c]): Planted => ({
  line: carry(c, MSG.replace(f === 'DST' ? 'DST=198.51.100.7' : 'SRC=192.0.2.1', `${f}=${a}`)),
  expect: 'malformed',
  what: `bad ${f}`,
}));
const swapped = fc.nat().map((c): Planted => ({ line: carry(c, MSG.replace('SRC=192.0.2.1 DST=198.51.100.7', 'DST=198.51.100.7 SRC=192.0.2.1')), expect: 'malformed', what: 'DST before SRC' }));
const oddProto = fc.tuple(fc.oneof(fc.constantFrom('tcp', 'Tcp', 'TCPX', 'T', '', '-1', '1e3', '0x06', 'TCP\u0000', 'ICMP', 'ICMPv6'), fc.integer({ min: 256, max: 9_999_999_999 }).map(String)), fc.nat()).map(
  ([p, c]): Planted => ({ line: carry(c, MSG.replace('PROTO=TCP', `PROTO=${p}`)), expect: 'malformed', what: `PROTO=${p}` }),
);
const oddPorts = fc.tuple(fc.constantFrom('SPT', 'DPT'), fc.oneof(fc.integer({ min: 65536, max: 9_999_999_999 }).map(String), fc.constantFrom('', '-1', '2x', '0x19', '25.0', ' 25')), fc.nat()).map(([f, v, c]): Planted => ({
  line: carry(c, MSG.replace(f === 'SPT' ? 'SPT=57408' : 'DPT=25', `${f}=${v}`)),
  expect: 'malformed',
  what: `${f}=${v}`,
}));
/** The kernel prints UID= and GID= together or not at all. */
const owner = fc.tuple(
  fc.constantFrom('GID=33 ', 'UID=33 ', 'UID= GID=33 ', 'UID=x GID=33 ', 'UID=33 GID=-5 ', 'UID=-1 GID=33 ', 'UID=4294967296 GID=33 ', 'UID=4294967295 GID=0 ', 'UID=33 GID=99999999999 ', 'UID=33 GID=4294967296 '),
  fc.nat(),
).map(([o, c]): Planted => ({ line: carry(c, MSG.replace('UID=33 GID=33 ', o)), expect: 'malformed', what: `owner ${o.trim()}` }));
/** Not an egress tag: some other LOG rule's line, never an event. */
const wrongPrefix = fc.tuple(fc.constantFrom('EGRESS X:smtp ', 'EGRESS D:SMTP ', 'EGRESS D: ', 'EGRESS D:smtp~zzz ', 'EGRESS D:~abc ', 'EGRESS D:smtp', 'EGRESS d:sm.tp ', 'EGRESS :smtp ', 'UFW BLOCK ', '', 'EGRESS D:smtp~3f2x '), fc.nat()).map(
  ([p, c]): Planted => ({ line: carry(c, `${p}${TCP4}`), expect: 'other', what: `prefix ${JSON.stringify(p)}` }),
);
/** Odd but whole: still events (or inbound). */
const ODD_WHOLE: [string, Expect][] = [
    [TCP4.replace('PROTO=TCP SPT=57408 DPT=25 ', 'PROTO=47 '), 'event'],
    [TCP4.replace('PROTO=TCP SPT=57408 DPT=25 ', 'PROTO=0 '), 'event'],
    [TCP4.replace('DPT=25', 'DPT=0'), 'event'],
    [TCP4.replace('PROTO=TCP', 'PROTO=UDPLITE'), 'event'],
    [TCP4.replace('PROTO=TCP', 'PROTO=SCTP'), 'event'],
    [TCP4.replace('UID=33 GID=33 ', 'UID=4294967294 GID=4294967294 '), 'event'],
    [TCP4.replace('DST=198.51.100.7', 'DST=198.51.100.7 DST=203.0.113.1'), 'event'],
    [INBOUND, 'inbound'],
    [TCP4.replace('IN= OUT=eth0', 'IN=eth0 OUT='), 'inbound'],
];
const oddButWhole = fc.tuple(fc.constantFrom(...ODD_WHOLE), fc.nat()).map(([[m, e], c]): Planted => ({ line: carry(c, `EGRESS D:smtp ${m}`), expect: e, what: 'odd but whole' }));

/** Time stamps no log line can have. */
const impossibleTimes = fc.constantFrom<Planted>(
  ...['Feb 30 10:00:00', 'Feb 31 25:61:99', 'Apr 31 10:00:00', 'Nov 23 24:00:00', 'Nov 23 23:60:00', 'Nov 23 23:59:61', 'Nov 00 10:00:00', 'Xyz 23 10:00:00', 'Nov 32 10:00:00'].map((s) => ({ line: syslog(MSG, s), expect: 'malformed' as Expect, what: `syslog ${s}` })),
  ...['9999-99-99T99:99:99Z', '2026-02-30T10:00:00Z', '2026-11-23T24:00:00Z', '2026-11-23T23:60:00Z', '1999-12-31T23:59:59Z', '1970-01-01T00:00:00Z', '2099-01-01T00:00:00Z', '2026-00-10T10:00:00Z'].map((s) => ({ line: iso(MSG, s), expect: 'malformed' as Expect, what: `ISO ${s}` })),
  { line: `<4>1 2026-13-01T00:00:00Z web1 kernel - - - ${MSG}`, expect: 'malformed', what: 'RFC 5424 month 13' },
  { line: dmesg(MSG, '99999999999999999999.1'), expect: 'malformed', what: 'dmesg 1e20 s' },
  { line: dmesg(MSG, '9999999999.5'), expect: 'malformed', what: 'dmesg 317 years' },
  ...['Mon Feb 30 25:61:99 2026', 'Mon Nov 31 10:00:00 2026', 'Mon Nov 23 24:00:00 2026', 'Mon Nov 23 10:60:00 2026', 'Mon Nov 23 10:00:00 1999', 'Mon Nov 23 10:00:00 9999'].map((s) => ({ line: dmesgT(MSG, s), expect: 'malformed' as Expect, what: `dmesg -T ${s}` })),
  { line: kmsg(MSG).replace(',1738426972,', ',100000000000000000000000,'), expect: 'malformed', what: 'kmsg 1e23 µs' },
  { line: kmsg(MSG).replace(',1738426972,', ',999999999999999,'), expect: 'malformed', what: 'kmsg 31 years' },
  { line: journal(MSG).replace('"1795000000000000"', '"1e400"'), expect: 'malformed', what: 'journal "1e400"' },
  { line: journal(MSG).replace('"1795000000000000"', '1e400'), expect: 'malformed', what: 'journal 1e400 (a number)' },
  { line: journal(MSG).replace('"1795000000000000"', '"99999999999999999999999"'), expect: 'malformed', what: 'journal 1e22 µs' },
  { line: journal(MSG).replace('"1795000000000000"', '"-1"'), expect: 'malformed', what: 'journal -1' },
  { line: journal(MSG).replace('"1795000000000000"', 'true'), expect: 'malformed', what: 'journal stamp true' },
  { line: journal(MSG).replace('"1795000000000000"', '{}'), expect: 'malformed', what: 'journal stamp {}' },
);

// --- binary -------------------------------------------------------------------

/** Bytes without a newline, as a latin1 line (the reader's decoding), and the same with a NUL inside a field. */
const binaryLine = fc.uint8Array({ minLength: 1, maxLength: 3000 }).map((b): Planted => ({ line: Buffer.from(b.filter((x) => x !== 10)).toString('latin1'), expect: 'none', what: `${b.length} binary bytes` }));
const nulInField = fc.tuple(fc.constantFrom('DST=198.51.100.7', 'DPT=25', 'SPT=57408', 'PROTO=TCP', 'UID=33'), fc.nat(), fc.integer({ min: 0, max: 255 })).map(([f, c, byte]): Planted => {
  const k = f.length - 1;
  // A byte that could still read as the field (a digit, the letter it replaces) or split it (space, newline) becomes NUL.
  const bad = f.slice(0, k) + String.fromCharCode(byte === 0x20 || byte === 10 || (byte >= 48 && byte <= 57) || byte === f.charCodeAt(k) ? 0 : byte);
  return { line: carry(c, MSG.replace(f, bad)), expect: 'malformed', what: `byte in ${f}` };
});

// --- forged lines (D5) ------------------------------------------------------------

const FORGED_DST = '203.0.113.66';
const FORGED = `EGRESS D:smtp ${TCP4.replace('DST=198.51.100.7', `DST=${FORGED_DST}`).replace('UID=33 GID=33', 'UID=0 GID=0')}`;
const forged = fc.constantFrom<Planted>(
  ...['nobody[1234]', 'myapp', 'kernelx', 'Kernel', 'KERNEL', 'sudo', 'systemd[1]', 'logger', 'kerne', 'kernel-audit', 'kernel_', 'xkernel'].map((tag) => ({ line: `Nov 23 09:14:43 web1 ${tag}: ${FORGED}`, expect: 'other' as Expect, what: `syslog tag ${tag}` })),
  { line: `Nov 23 09:14:43 web1 myapp: hello ${FORGED}`, expect: 'other', what: 'syslog, text before the prefix' },
  { line: `Nov 23 09:14:43 web1 myapp: kernel: ${FORGED}`, expect: 'other', what: 'syslog, kernel: inside the message' },
  { line: `<13>Nov 23 09:14:43 web1 nobody: ${FORGED}`, expect: 'other', what: 'syslog with PRI' },
  { line: `2025-11-23T09:14:43.000000+01:00 web1 nobody[99]: ${FORGED}`, expect: 'other', what: 'ISO, user tag' },
  { line: `<13>1 2025-11-23T09:14:43Z web1 logger 99 - - ${FORGED}`, expect: 'other', what: 'RFC 5424 APP-NAME logger' },
  // Garbled or inbound, and still not the kernel's: other, never a malformed line quoted in the report (with its escapes).
  { line: `Nov 23 09:14:43 web1 nobody: ${FORGED.replace('PROTO=TCP', 'PROTO=\u001b]0;owned\u0007\u001b[2J')}`, expect: 'other', what: 'syslog, user tag, escapes in PROTO' },
  { line: `Nov 23 09:14:43 web1 nobody: ${FORGED.replace(`DST=${FORGED_DST}`, 'DST=\u009b31m')}`, expect: 'other', what: 'syslog, user tag, C1 in DST' },
  { line: `Nov 23 09:14:43 web1 nobody: ${FORGED.replace('IN= OUT=eth0', 'IN=eth0 OUT=')}`, expect: 'other', what: 'syslog, user tag, inbound' },
  ...['syslog', 'stdout', 'journal', 'audit', 'driver', 'Kernel', ''].map((t) => ({
    line: JSON.stringify({ __REALTIME_TIMESTAMP: '1795000000000000', _TRANSPORT: t, SYSLOG_IDENTIFIER: 'nobody', MESSAGE: FORGED }),
    expect: 'other' as Expect,
    what: `journal _TRANSPORT=${t}`,
  })),
  ...[null, 5, ['kernel'], { a: 'kernel' }].map((t) => ({ line: JSON.stringify({ __REALTIME_TIMESTAMP: '1795000000000000', _TRANSPORT: t, MESSAGE: FORGED }), expect: 'other' as Expect, what: `journal _TRANSPORT=${JSON.stringify(t)}` })),
);

// --- odd journal JSON (D9) ------------------------------------------------------

const rec = (message: unknown, extra: Record<string, unknown> = {}) => JSON.stringify({ __REALTIME_TIMESTAMP: '1795000000000000', _TRANSPORT: 'kernel', ...extra, MESSAGE: message });
const nested = (depth: number, open: string, close: string, inner = '') => `{"__REALTIME_TIMESTAMP":"1795000000000000","MESSAGE":${open.repeat(depth)}${inner}${close.repeat(depth)}}`;
const bytes = (s: string) => [...Buffer.from(s, 'latin1')];
const oddJournal = fc.oneof(
  fc.integer({ min: 2, max: 30_000 }).map((d): Planted => ({ line: nested(d, '[', ']'), expect: 'malformed', what: `MESSAGE nested ${d} arrays deep` })),
  fc.integer({ min: 2, max: 15_000 }).map((d): Planted => ({ line: nested(d, '{"a":', '}', '"IN= OUT=eth0"'), expect: 'malformed', what: `MESSAGE nested ${d} objects deep` })),
  fc.constantFrom<Planted>(
    { line: rec([1, 2, 3, 'x', null, {}, 'OUT=']), expect: 'malformed', what: 'MESSAGE array of non-bytes' },
    { line: rec(bytes(MSG).map((b, k) => (k === 3 ? 300 : b))), expect: 'malformed', what: 'MESSAGE byte 300' },
    { line: rec(bytes(MSG).map((b, k) => (k === 3 ? -1 : b))), expect: 'malformed', what: 'MESSAGE byte -1' },
    { line: rec(bytes(MSG).map((b, k) => (k === 3 ? 65.5 : b))), expect: 'malformed', what: 'MESSAGE byte 65.5' },
    { line: rec([...bytes(MSG), [1]]), expect: 'malformed', what: 'MESSAGE bytes and an array' },
    { line: rec({ text: MSG }), expect: 'malformed', what: 'MESSAGE object' },
    { line: rec(5, { X: 'IN= OUT=eth0' }), expect: 'malformed', what: 'MESSAGE number' },
    { line: rec(true, { X: 'IN= OUT=eth0' }), expect: 'malformed', what: 'MESSAGE true' },
    { line: rec(null, { X: 'IN= OUT=eth0' }), expect: 'malformed', what: 'MESSAGE null' },
    { line: rec(MSG).slice(0, 120), expect: 'malformed', what: 'record cut in half' },
    { line: rec(MSG) + ' trailing', expect: 'malformed', what: 'record with trailing text' },
    { line: rec(MSG) + rec(MSG), expect: 'malformed', what: 'two records on one line' },
    { line: rec(bytes(MSG)), expect: 'event', what: 'MESSAGE as bytes' },
    { line: `{"__REALTIME_TIMESTAMP":"1795000000000000","MESSAGE":"x","MESSAGE":${JSON.stringify(MSG)}}`, expect: 'event', what: 'MESSAGE twice' },
    { line: JSON.stringify({ __REALTIME_TIMESTAMP: '1795000000000000', __proto__: { MESSAGE: MSG } }).replace('{"__REALTIME', '{"__proto__":{"MESSAGE":' + JSON.stringify(MSG) + '},"__REALTIME'), expect: 'none', what: '__proto__ record' },
    { line: JSON.stringify({ X: `IN= OUT=eth0 ${MSG}` }), expect: 'none', what: 'no MESSAGE' },
    { line: rec('hello'), expect: 'none', what: 'MESSAGE without netfilter' },
  ),
);

describe('malformed kernel lines: counted where they are, the good lines around them still events (stats, learn, replay)', () => {
  test('cut fields', () => plantAttack('kernel lines: cut fields', fc.oneof(cutFields, cutOwner), 60, 1));
  test('bad addresses', () => plantAttack('kernel lines: bad addresses', badAddress, 60, 2));
  test('SRC/DST swapped, odd PROTO and ports, UID/GID apart', () => plantAttack('kernel lines: swaps, PROTO, ports, UID/GID', fc.oneof(swapped, oddProto, oddPorts, owner), 60, 3));
  test('wrong prefixes and tags: other, never events; odd but whole lines: events', () => plantAttack('kernel lines: wrong prefixes, odd but whole', fc.oneof(wrongPrefix, oddButWhole), 40, 4));
  test('each odd but whole line through each command (learn proposes rules from them)', async () => {
    const trials = ODD_WHOLE.flatMap(([m, e], k) => COMMANDS.map((cmd) => ({ m, e, k, cmd })));
    await attack(CLS, 'odd but whole lines, every command', trials, (t) => `${t.cmd}: …${JSON.stringify(t.m.slice(-70))}`, async (t, i) => {
      const p: Planted = { line: carry(t.k, `EGRESS D:smtp ${t.m}`), expect: t.e, what: 'odd but whole' };
      const { text, lines, plantedAt } = assemble([p], 3, [1]);
      const name = `whole${i}.log`;
      writeFileSync(join(dir, name), text);
      expectAccounting((await countsOf(t.cmd, name)).c, name, lines.length, 3, plantedAt);
    });
  });
  test('impossible time stamps', () => plantAttack('kernel lines: impossible time stamps', impossibleTimes, 60, 5));
  test('binary lines and bytes inside fields', () => plantAttack('binary lines', fc.oneof(binaryLine, nulInField), 40, 6));
  test('odd and nested journal JSON (D9)', () => plantAttack('journal JSON (D9)', oddJournal, 50, 7));
});

describe('forged non-kernel lines (D5): other, never denials, never learned', () => {
  test('syslog tags and journal transports', async () => {
    const ts = trials(forged, 45, 8);
    await attack(CLS, 'forged syslog and journal lines (D5)', ts, (t) => label(t.planted), async (t, i) => {
      await plantTrial(t.planted, i, t.at);
      // learn proposes nothing for the forged destination.
      const name = `forged${i}.log`;
      writeFileSync(join(dir, name), assemble(t.planted, 3, t.at).text);
      const { out } = await countsOf('learn', name);
      expect(JSON.stringify((out as { rules: unknown }).rules)).not.toContain(FORGED_DST);
      const s = await countsOf('stats', name);
      expect(JSON.stringify(s.out)).not.toContain(FORGED_DST);
    });
  });
});

// --- long lines, no final newline -----------------------------------------------

describe('very long lines and a missing final newline (in-process)', () => {
  test('one over-long line among good ones: counted once, later line numbers right', async () => {
    const sizes = [65_537, 100_000, 524_288, 524_289, 1_048_577, 3_000_000];
    const cases = sizes.flatMap((n) => [
      { n, fill: 'A' },
      { n, fill: '\u0000' },
      { n, fill: 'IN= OUT=' },
    ]);
    await attack(CLS, 'very long lines', cases, (c) => `${c.n} bytes of ${JSON.stringify(c.fill)}`, async (c, i) => {
      const long = c.fill.repeat(Math.ceil(c.n / c.fill.length)).slice(0, c.n);
      // good, long, good, cut (malformed), good
      const lines = [good(0), long, good(1), carry(0, MSG.slice(0, posOf(MSG, ' DPT='))), good(2)];
      const name = `long${i}.log`;
      writeFileSync(join(dir, name), lines.join('\n') + '\n');
      const { c: counts } = await countsOf(COMMANDS[i % 3]!, name);
      expect({ lines: counts.lines, events: counts.events, malformed: counts.malformed }).toEqual({ lines: 5, events: 3, malformed: 2 });
      expect(counts.problems.map((p) => p.line)).toEqual([2, 4]);
    });
  });

  test('no final newline', async () => {
    const lastLines: Planted[] = [
      { line: good(3), expect: 'event', what: 'a good last line' },
      { line: carry(0, MSG.slice(0, posOf(MSG, ' SPT='))), expect: 'malformed', what: 'a cut last line' },
      { line: rec(MSG).slice(0, 100), expect: 'malformed', what: 'a cut journal record' },
      { line: 'x'.repeat(70_000), expect: 'malformed', what: 'an over-long last line' },
      { line: 'x'.repeat(600_000), expect: 'malformed', what: 'an over-long last line over two chunks' },
      { line: 'hello', expect: 'none', what: 'a last line that is no record' },
      { line: '\r', expect: 'none', what: 'a lone CR' },
    ];
    await attack(CLS, 'no final newline', lastLines, (p) => p.what, async (p, i) => {
      const lines = [good(0), good(1), p.line];
      const name = `nonl${i}.log`;
      writeFileSync(join(dir, name), lines.join('\n'));
      const { c } = await countsOf(COMMANDS[i % 3]!, name);
      expectAccounting(c, name, 3, 2, new Map([[2, p]]));
    });
  });
});

// --- gzip ---------------------------------------------------------------------------

const GOOD_TEXT = Array.from({ length: 2000 }, (_, i) => good(i)).join('\n') + '\n';
const GZ = gzipSync(GOOD_TEXT);

/** Lines a damaged gzip file still holds: what it decompresses to, flushed as far as it goes. */
function readable(buf: Buffer): string {
  try {
    return gunzipSync(buf, { finishFlush: Z.Z_SYNC_FLUSH }).toString('latin1');
  } catch {
    return '';
  }
}

describe('gzip: damaged files (in-process)', () => {
  test('truncated at sampled points: the whole lines before the cut are read, the damage counted once', async () => {
    const cuts = sample(fc.integer({ min: 10, max: GZ.length - 9 }), 25, 9);
    await attack(CLS, 'gzip: truncated', cuts, (n) => `cut at byte ${n} of ${GZ.length}`, async (n, i) => {
      const name = `trunc${i}.log.gz`;
      writeFileSync(join(dir, name), GZ.subarray(0, n));
      const text = readable(GZ.subarray(0, n));
      const whole = text.split('\n').length - 1;
      const partial = text.length > 0 && !text.endsWith('\n');
      const { c } = await countsOf(COMMANDS[i % 3]!, name);
      expect(c.lines).toBe(whole + (partial ? 1 : 0));
      // Whole lines are events; a partial last one may be an event (cut after its fields), malformed or no record.
      expect(c.events).toBeGreaterThanOrEqual(whole);
      expect(c.events + c.malformed - 1).toBeLessThanOrEqual(c.lines);
      expect(c.problems.filter((p) => /gzip/.test(p.reason))).toHaveLength(1);
    });
  });

  test('bad CRC, bad length, trailing garbage, multi-member, tiny and empty files', async () => {
    const crc = Buffer.from(GZ);
    crc.writeUInt32LE(crc.readUInt32LE(crc.length - 8) ^ 0xffffffff, crc.length - 8);
    const isize = Buffer.from(GZ);
    isize.writeUInt32LE(7, isize.length - 4);
    const half = GOOD_TEXT.indexOf('\n', GOOD_TEXT.length / 2) + 1;
    const cases: { what: string; bytes: Buffer; lines: number; events: number; malformed: number }[] = [
      { what: 'bad CRC', bytes: crc, lines: 2000, events: 2000, malformed: 1 },
      { what: 'bad ISIZE', bytes: isize, lines: 2000, events: 2000, malformed: 1 },
      // Zero padding after the last member is ignored, as gzip(1) ignores it ("trailing zero bytes ignored").
      { what: 'trailing zero padding', bytes: Buffer.concat([GZ, Buffer.alloc(512)]), lines: 2000, events: 2000, malformed: 0 },
      ...['garbage\n', '\x1f', '\x1f\x8b', '\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03', 'x'.repeat(100_000)].map((g) => ({ what: `trailing ${JSON.stringify(g.slice(0, 12))}`, bytes: Buffer.concat([GZ, Buffer.from(g, 'latin1')]), lines: 2000, events: 2000, malformed: 1 })),
      { what: 'a good member, then a cut one', bytes: Buffer.concat([GZ, GZ.subarray(0, 20)]), lines: 2000, events: 2000, malformed: 1 },
      { what: 'multi-member, cut inside a line', bytes: Buffer.concat([gzipSync(GOOD_TEXT.slice(0, half - 30)), gzipSync(GOOD_TEXT.slice(half - 30))]), lines: 2000, events: 2000, malformed: 0 },
      { what: 'multi-member, 2000 one-line members', bytes: Buffer.concat(GOOD_TEXT.split('\n').slice(0, 2000).map((l) => gzipSync(l + '\n'))), lines: 2000, events: 2000, malformed: 0 },
      { what: '2-byte gzip', bytes: Buffer.from([0x1f, 0x8b]), lines: 0, events: 0, malformed: 1 },
      { what: 'gzip header only', bytes: GZ.subarray(0, 10), lines: 0, events: 0, malformed: 1 },
      { what: 'gzip of nothing', bytes: gzipSync(''), lines: 0, events: 0, malformed: 0 },
      { what: 'empty file', bytes: Buffer.alloc(0), lines: 0, events: 0, malformed: 0 },
      { what: 'one byte 0x1f', bytes: Buffer.from([0x1f]), lines: 1, events: 0, malformed: 0 },
    ];
    await attack(CLS, 'gzip: CRC, garbage, members, tiny', cases, (c) => c.what, async (c, i) => {
      const name = `gz${i}.log.gz`;
      writeFileSync(join(dir, name), c.bytes);
      const { c: counts } = await countsOf(COMMANDS[i % 3]!, name);
      expect({ lines: counts.lines, events: counts.events, malformed: counts.malformed }).toEqual({ lines: c.lines, events: c.events, malformed: c.malformed });
    });
  });
});

// --- unreadable inputs ---------------------------------------------------------------

describe('inputs that cannot be read: exit 1, a plain error naming the file', () => {
  test('missing, directory, dangling link, link loop, UTF-16 (with the conversion to run)', async () => {
    mkdirSync(join(dir, 'adir'), { recursive: true });
    symlinkSync(join(dir, 'nowhere'), join(dir, 'dangling.log'));
    symlinkSync(join(dir, 'loop2.log'), join(dir, 'loop1.log'));
    symlinkSync(join(dir, 'loop1.log'), join(dir, 'loop2.log'));
    const pf = `#Version: 1.5\n#Fields: date time action protocol src-ip dst-ip src-port dst-port size tcpflags tcpsyn tcpack tcpwin icmptype icmpcode info path\n2025-11-23 09:14:42 DROP TCP 192.0.2.1 198.51.100.7 40000 443 60 S - - - - - - SEND\n`;
    const utf16be = (s: string) => Buffer.from(s, 'utf16le').swap16();
    const files: Record<string, Buffer> = {
      'u16le-bom.log': Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(pf, 'utf16le')]),
      'u16be-bom.log': Buffer.concat([Buffer.from([0xfe, 0xff]), utf16be(pf)]),
      'u16le.log': Buffer.from(pf, 'utf16le'),
      'u16be.log': utf16be(pf),
      'u16kern.log': Buffer.from(GOOD_TEXT.slice(0, 4000), 'utf16le'),
      'u16.log.gz': gzipSync(Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(pf, 'utf16le')])),
    };
    for (const [f, b] of Object.entries(files)) writeFileSync(join(dir, f), b);
    const cases: { file: string; why: RegExp }[] = [
      { file: 'missing.log', why: /no such file/ },
      { file: 'adir', why: /directory/ },
      { file: 'dangling.log', why: /no such file/ },
      { file: 'loop1.log', why: /symbolic links|loop/ },
      ...Object.keys(files).map((f) => ({ file: f, why: new RegExp(`UTF-16; convert it first \\(iconv -f UTF-16 -t UTF-8 ${f.replace(/\./g, '\\.')} > `) })),
    ];
    const runs = cases.flatMap((c) => COMMANDS.map((cmd) => ({ ...c, cmd })));
    await attack(CLS, 'unreadable inputs', runs, (c) => `${c.cmd} ${c.file}`, async (c) => {
      const r = await run(argv(c.cmd, c.file), { cwd: dir, env });
      expectNoCrash(r.stdout + r.stderr);
      expect(r.code).toBe(1);
      // One plain line naming the file (said once), with the reason.
      expect(r.stderr).toMatch(new RegExp(`^egress: error: cannot read ${c.file.replace(/\./g, '\\.')}: `));
      expect(r.stderr.split(`cannot read ${c.file}`)).toHaveLength(2);
      expect(r.stderr).toMatch(c.why);
    });
  });
});

// --- pfirewall.log (Windows) -----------------------------------------------------------

const PF_FIELDS = 'date time action protocol src-ip dst-ip src-port dst-port size tcpflags tcpsyn tcpack tcpwin icmptype icmpcode info path';
const PF_HEAD = `#Version: 1.5\n#Software: Microsoft Windows Firewall\n#Time Format: Local\n#Fields: ${PF_FIELDS}\n`;
const pfRow = (i: number, o: { date?: string; time?: string; src?: string; dst?: string } = {}) =>
  `${o.date ?? '2025-11-23'} ${o.time ?? '09:14:42'} DROP TCP ${o.src ?? '192.0.2.1'} ${o.dst ?? '198.51.100.7'} ${40000 + i} 443 60 S 123 0 64240 - - - SEND`;
const pfPlanted = fc.oneof(
  fc.integer({ min: 1, max: 16 }).map((k): Planted => ({ line: pfRow(0).split(' ').slice(0, k).join(' '), expect: 'malformed', what: `${k} of 17 columns` })),
  fc.constantFrom<Planted>(
    { line: pfRow(0).replace(' TCP ', ' TCP x '), expect: 'malformed', what: 'an extra column in the middle' },
    { line: `${pfRow(0)} 4242`, expect: 'event', what: 'an extra column at the end (read by position: tolerated)' },
    ...['2025-13-45', '2025-02-30', '2025-04-31', '2025-00-10', '25-11-23', '2025/11/23', 'yesterday', '2025-11-23T09'].map((d) => ({ line: pfRow(0, { date: d }), expect: 'malformed' as Expect, what: `date ${d}` })),
    ...['25:00:00', '10:60:00', '10:00:61', '9:14:42', '09:14', 'noon'].map((t) => ({ line: pfRow(0, { time: t }), expect: 'malformed' as Expect, what: `time ${t}` })),
    { line: pfRow(0, { dst: '198.51.100.\u00007' }), expect: 'malformed', what: 'NUL in dst-ip' },
    { line: '\u0000\u0000\u0000', expect: 'malformed', what: 'NULs' },
    { line: pfRow(0, { dst: '2001:db8::1' }), expect: 'malformed', what: 'families differ' },
    { line: pfRow(0, { dst: '999.1.1.1' }), expect: 'malformed', what: 'bad dst-ip' },
    { line: pfRow(0).replace(' 443 ', ' 70000 '), expect: 'malformed', what: 'dst-port 70000' },
    { line: pfRow(0).replace(' TCP ', ' 999 '), expect: 'malformed', what: 'protocol 999' },
    { line: pfRow(0).replace(' DROP ', ' 1DROP '), expect: 'malformed', what: 'action 1DROP' },
    { line: pfRow(0).replace(/ /g, '\t'), expect: 'event', what: 'tabs' },
    { line: `${pfRow(0)}\r`, expect: 'event', what: 'CRLF' },
    { line: pfRow(0).replace(' DROP ', ' INFO-EVENTS-LOST '), expect: 'none', what: 'INFO-EVENTS-LOST' },
    { line: pfRow(0).replace(' SEND', ' RECEIVE'), expect: 'inbound', what: 'RECEIVE' },
    { line: '#Fields: date time action protocol src-ip dst-ip src-port dst-port size tcpflags tcpsyn tcpack tcpwin icmptype icmpcode info path pid', expect: 'none', what: '#Fields: again, with pid (rows without it are then short)' },
  ),
);

describe('pfirewall.log (Windows)', () => {
  test('odd rows among good ones', async () => {
    const ts = sample(fc.record({ planted: fc.array(pfPlanted, { minLength: 1, maxLength: 4 }), at: fc.array(fc.nat(50), { minLength: 4, maxLength: 4 }) }), 60, 10);
    await attack(CLS, 'pfirewall: odd rows', ts, (t) => label(t.planted), async (t, i) => {
      // A #Fields: line with pid makes every later 17-column row short: the good rows get a pid once it was seen.
      const goodCount = 3 + (i % 4);
      const total = goodCount + t.planted.length;
      const positions = spread(t.at.slice(0, t.planted.length), total);
      const rows: string[] = [];
      const plantedAt = new Map<number, Planted>();
      let withPid = false;
      let g = 0;
      for (let k = 0; k < total; k++) {
        const idx = positions.indexOf(k);
        if (idx >= 0) {
          let p = t.planted[idx]!;
          if (withPid && p.expect === 'event') p = { ...p, line: `${p.line.replace(/\r$/, '')} 4242`, expect: 'event' };
          if (withPid && p.expect === 'inbound') p = { ...p, line: `${p.line} 4242` };
          // An INFO-EVENTS-LOST row is a row too: short without the pid once #Fields: has one (seed 1887561166 planted it after).
          if (withPid && p.expect === 'none' && !p.line.startsWith('#')) p = { ...p, line: `${p.line} 4242` };
          if (withPid && p.what.startsWith('16 of')) p = { ...p, expect: 'malformed' };
          if (p.what.startsWith('#Fields')) withPid = true;
          rows.push(p.line);
          plantedAt.set(k + 4, p);
        } else rows.push(withPid ? `${pfRow(++g)} 4242` : pfRow(++g));
      }
      const name = `pf${i}.log`;
      writeFileSync(join(dir, name), PF_HEAD + rows.join('\n') + '\n');
      const { c } = await countsOf(COMMANDS[i % 3]!, name);
      // The header's four lines are lines, nothing else.
      expectAccounting(c, name, total + 4, goodCount, plantedAt);
    });
  });

  test('#Fields: redefined without the columns needed, and no #Fields: at all', async () => {
    const cases = [
      { what: 'a #Fields: without dst-ip: its rows malformed until the next', text: `${PF_HEAD}${pfRow(1)}\n#Fields: date time action protocol src-ip\n${pfRow(2)}\n${pfRow(3)}\n#Fields: ${PF_FIELDS}\n${pfRow(4)}\n`, lines: 10, events: 2, malformed: 2 },
      { what: 'an empty #Fields:', text: `${PF_HEAD}#Fields:\n${pfRow(1)}\n`, lines: 6, events: 0, malformed: 1 },
      { what: 'columns reordered', text: `#Version: 1.5\n#Fields: path dst-ip src-ip date time action protocol\nSEND 198.51.100.7 192.0.2.1 2025-11-23 09:14:42 DROP TCP\n`, lines: 3, events: 1, malformed: 0 },
      { what: 'no #Fields: (the 1.5 columns)', text: `#Version: 1.5\n#Software: Microsoft Windows Firewall\n${pfRow(1)}\n${pfRow(2)}\n`, lines: 4, events: 2, malformed: 0 },
      { what: 'a #Fields: of 2000 columns', text: `#Fields: ${Array.from({ length: 2000 }, (_, k) => `c${k}`).join(' ')}\n${pfRow(1)}\n`, lines: 2, events: 0, malformed: 1 },
      { what: 'a UTF-8 BOM', text: `\ufeff${PF_HEAD}${pfRow(1)}\n`, lines: 5, events: 1, malformed: 0 },
    ];
    await attack(CLS, 'pfirewall: #Fields:', cases, (c) => c.what, async (c, i) => {
      const name = `pff${i}.log`;
      writeFileSync(join(dir, name), c.text);
      const { c: counts } = await countsOf(COMMANDS[i % 3]!, name);
      expect({ lines: counts.lines, events: counts.events, malformed: counts.malformed }).toEqual({ lines: c.lines, events: c.events, malformed: c.malformed });
    });
  });
});

// --- stale: counters.jsonl ------------------------------------------------------------------

describe('stale over a hostile counters.jsonl', () => {
  test('lines that are not samples are skipped and counted', async () => {
    const sampleLine = (day: number, packets: number) => JSON.stringify({ time: new Date(Date.UTC(2026, 4, day)).toISOString(), policyHash: 'sha256:x', backend: 'nft', counters: [{ rule: 'dns', action: 'allow', family: 'ipv4', packets, bytes: packets * 60 }] });
    const bad = [
      '{',
      'null',
      '[]',
      '5',
      '"x"',
      '{"time":"x","counters":[]}',
      '{"time":"2026-05-02T00:00:00Z","counters":{}}',
      '{"time":"2026-05-02T00:00:00Z","counters":[null]}',
      '{"time":"2026-05-02T00:00:00Z","counters":[{"rule":"dns","action":"allow","packets":"5","bytes":1}]}',
      '{"time":"2026-05-02T00:00:00Z","counters":[{"rule":"dns","action":"allow","packets":1e400,"bytes":1}]}',
      '{"time":"2026-05-02T00:00:00Z","counters":[{"rule":"dns","action":"allow","packets":-5,"bytes":1}]}',
      '{"time":"2026-05-02T00:00:00Z","counters":[{"rule":"dns","action":"allow","packets":1.5,"bytes":1}]}',
      '{"time":"2026-05-02T00:00:00Z","counters":[{"rule":5,"action":"allow","packets":1,"bytes":1}]}',
      '{"__proto__":{"time":"2026-05-02T00:00:00Z","counters":[]}}',
      `{"time":"2026-05-02T00:00:00Z","counters":${'['.repeat(20_000)}${']'.repeat(20_000)}}`,
      '[' .repeat(100_000),
      randomBytes(2000).toString('latin1').replace(/\n/g, ''),
      sampleLine(3, 5).slice(0, 40),
    ];
    const ts = sample(fc.record({ k: fc.array(fc.nat(bad.length - 1), { minLength: 1, maxLength: 5 }), good: fc.integer({ min: 2, max: 6 }) }), 30, 11);
    await attack(CLS, 'stale: counters.jsonl', ts, (t) => `seed ${SEED}: ${t.good} samples, bad lines ${t.k.join(',')}`, async (t, i) => {
      const state = join(dir, `stale${i}`);
      mkdirSync(state, { recursive: true, mode: 0o700 });
      const lines = [...Array.from({ length: t.good }, (_, d) => sampleLine(d + 1, d * 10)), ...t.k.map((k) => bad[k]!)];
      writeFileSync(join(state, 'counters.jsonl'), lines.join('\n') + '\n');
      const r = await run(['stale', 'policy.yaml', '--json'], { cwd: dir, env: { EGRESS_STATE_DIR: state } });
      expectNoCrash(r.stdout + r.stderr);
      expect(r.code).toBe(0);
      const j = jsonResult(r.stdout, 'stale', r.code) as { samples: number; skipped: number };
      expect({ samples: j.samples, skipped: j.skipped }).toEqual({ samples: t.good, skipped: t.k.length });
    });
  });
});

// --- spawned: memory and hangs -------------------------------------------------------------

/**
 * Bounds for a spawned CLI: it must end within TIMEOUT_MS (a backstop for a hang, far above the seconds each run
 * takes, so a busy machine does not fail it) and stay under RSS_LIMIT_KB.
 */
const TIMEOUT_MS = 180_000;
const RSS_LIMIT_KB = 400 * 1024;

describe('memory and hangs (a spawned CLI)', () => {
  let cli = '';
  let preload = '';
  beforeAll(() => {
    cli = buildCli('campaign-logs');
    // Peak RSS of the whole process (worker threads included), written at exit: getrusage, as /usr/bin/time %M.
    preload = join(dir, 'rss.cjs');
    writeFileSync(preload, `const { isMainThread } = require('node:worker_threads');\nif (isMainThread) process.on('exit', () => require('node:fs').writeFileSync(process.env.EGRESS_RSS_FILE, String(process.resourceUsage().maxRSS)));\n`);
  }, 600_000);
  afterAll(() => {
    if (cli) rmSync(join(cli, '..', '..'), { recursive: true, force: true });
  });

  interface Spawned {
    code: number | null;
    stdout: string;
    stderr: string;
    rssKb: number;
  }
  /** Run the compiled CLI; fails on a timeout (a hang) or a peak RSS over the bound. */
  function egress(args: string[], extraEnv: Record<string, string> = {}): Spawned {
    const rssFile = join(dir, `rss-${++fileNo}`);
    const r = spawnSync(process.execPath, ['--max-old-space-size=1024', '-r', preload, cli, ...args], {
      cwd: dir,
      env: { ...process.env, ...env, EGRESS_RSS_FILE: rssFile, ...extraEnv },
      timeout: TIMEOUT_MS,
      maxBuffer: 64 << 20,
      encoding: 'utf8',
    });
    if (r.error && (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT') throw new Error(`no answer within ${TIMEOUT_MS / 1000} s (a hang): egress ${args.join(' ')}`);
    expectNoCrash(r.stdout + r.stderr);
    const rssKb = existsSync(rssFile) ? Number(readFileSync(rssFile, 'utf8')) : NaN;
    if (!(rssKb < RSS_LIMIT_KB)) throw new Error(`peak RSS ${Math.round(rssKb / 1024)} MB (bound ${RSS_LIMIT_KB / 1024} MB): egress ${args.join(' ')}\n${r.stderr.slice(0, 300)}`);
    return { code: r.status, stdout: r.stdout, stderr: r.stderr, rssKb };
  }
  function lines(r: Spawned): Counts {
    if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stderr.slice(0, 400)}`);
    return (jsonResult(r.stdout, 'stats', r.code ?? undefined) as { lines: Counts }).lines;
  }

  /** A gzip file of `repeat` times `chunk`, compressed as a stream (nothing of its size in memory). */
  async function gzipOf(name: string, chunk: Buffer, repeat: number, tail = ''): Promise<string> {
    const path = join(dir, name);
    const gz = createGzip();
    const out = gz.pipe(createWriteStream(path));
    for (let k = 0; k < repeat; k++) if (!gz.write(chunk)) await new Promise<void>((r) => gz.once('drain', () => r()));
    gz.end(tail);
    await new Promise<void>((r) => out.on('finish', () => r()));
    return name;
  }

  /**
   * A log for stats' parallel reader: EGRESS_STATS_WORKERS=2 makes stats cut it in two parts and read them in
   * worker threads whatever its size (by itself, stats does so from 32 MiB on).
   */
  const BIG_LINES = 20_000;
  function bigLog(): string {
    const path = join(dir, 'big.log');
    if (!existsSync(path)) writeFileSync(path, Array.from({ length: BIG_LINES }, (_, i) => good(i * 7)).join('\n') + '\n');
    return 'big.log';
  }
  const PAR = { EGRESS_STATS_WORKERS: '2' };
  /** good, a 20 MB line, good, a cut line (malformed), good. */
  function longLog(): string {
    const path = join(dir, 'long20.log');
    if (!existsSync(path)) writeFileSync(path, [good(0), 'A'.repeat(20_000_000), good(1), carry(0, MSG.slice(0, posOf(MSG, ' DPT='))), good(2)].join('\n') + '\n');
    return 'long20.log';
  }

  test('gzip bombs: 256 MiB of newlines, of one line, of NULs; also beside a log in the parallel reader', async () => {
    const MiB = Buffer.alloc(1 << 20, 10);
    const cases: { what: string; make: () => Promise<string[]>; env?: Record<string, string>; lines: number; events: number; malformed: number }[] = [
      { what: '256 MiB of newlines', make: async () => [await gzipOf('bomb-nl.gz', MiB, 256)], lines: 256 << 20, events: 0, malformed: 0 },
      { what: '64 MiB without a newline', make: async () => [await gzipOf('bomb-a.gz', Buffer.alloc(1 << 20, 65), 64)], lines: 1, events: 0, malformed: 1 },
      { what: '32 MiB of NULs', make: async () => [await gzipOf('bomb-0.gz', Buffer.alloc(1 << 20, 0), 32)], lines: 1, events: 0, malformed: 1 },
      { what: '16 MiB of newlines, then good lines', make: async () => [await gzipOf('bomb-tail.gz', MiB, 16, GOOD_TEXT)], lines: (16 << 20) + 2000, events: 2000, malformed: 0 },
      // The parallel reader once decompressed a gzip part whole: 128 MiB took ~400 MB, a 1 GiB bomb 2.3 GB.
      { what: 'a log and 128 MiB of newlines, in two threads', make: async () => [bigLog(), await gzipOf('bomb-nl128.gz', MiB, 128)], env: PAR, lines: BIG_LINES + (128 << 20), events: BIG_LINES, malformed: 0 },
    ];
    await attack(CLS, 'gzip: bombs (spawned)', cases, (c) => c.what, async (c) => {
      const files = await c.make();
      const l = lines(egress(['stats', ...files, '--json'], c.env));
      expect({ lines: l.lines, events: l.events, malformed: l.malformed }).toEqual({ lines: c.lines, events: c.events, malformed: c.malformed });
    });
  }, 1_200_000);

  test('the parallel reader counts damaged gzip files and over-long lines as the sequential one does', async () => {
    const big = bigLog();
    const long20 = longLog();
    writeFileSync(join(dir, 'ptrunc.log.gz'), GZ.subarray(0, GZ.length >> 1));
    writeFileSync(join(dir, 'ptwo.log.gz'), Buffer.from([0x1f, 0x8b]));
    writeFileSync(join(dir, 'ptrail.log.gz'), Buffer.concat([GZ, Buffer.from('garbage')]));
    writeFileSync(join(dir, 'pu16.log.gz'), gzipSync(Buffer.from(GOOD_TEXT.slice(0, 5000), 'utf16le')));
    const cases = [
      { what: 'a 20 MB line beside a log', files: [big, long20] },
      { what: 'a truncated gzip beside a log', files: [big, 'ptrunc.log.gz'] },
      { what: 'a 2-byte gzip beside a log', files: [big, 'ptwo.log.gz'] },
      { what: 'trailing garbage beside a log', files: [big, 'ptrail.log.gz'] },
      { what: 'a UTF-16 gzip beside a log', files: [big, 'pu16.log.gz'] },
    ];
    await attack(CLS, 'parallel reader (spawned)', cases, (c) => c.what, async (c) => {
      // In-process, stats reads in order (the worker script exists only compiled): the answer to match.
      const seq = await run(['stats', ...c.files, '--json'], { cwd: dir, env });
      const par = egress(['stats', ...c.files, '--json'], PAR);
      expect({ code: par.code, stderr: par.stderr }).toEqual({ code: seq.code, stderr: seq.stderr });
      if (seq.code !== 0) return;
      const want = (jsonResult(seq.stdout, 'stats', seq.code) as { lines: Counts }).lines;
      expect(lines(par)).toEqual(want);
      expect(want.malformed).toBeGreaterThan(0);
      if (c.files.includes(long20)) expect(want.problems.filter((p) => p.where === long20).map((p) => p.line)).toEqual([2, 4]);
    });
  }, 1_200_000);

  test('very long lines, a binary file, devices and a FIFO', async () => {
    longLog();
    writeFileSync(join(dir, 'nonl30.log'), `${good(0)}\n${good(1)}\n${'B'.repeat(30_000_000)}`);
    // Seeded bytes, so a failure can be repeated.
    const rnd = (n: number, seed: number) => {
      const b = Buffer.alloc(n);
      let x = seed >>> 0 || 1;
      for (let k = 0; k < n; k++) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        b[k] = x & 255;
      }
      return b;
    };
    writeFileSync(join(dir, 'random.bin'), rnd(5_000_000, SEED));
    const elf = Buffer.alloc(64);
    Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]).copy(elf);
    elf.writeUInt16LE(62, 18);
    writeFileSync(join(dir, 'elf.bin'), Buffer.concat([elf, rnd(1_000_000, SEED + 1), Buffer.alloc(100_000)]));
    writeFileSync(join(dir, 'zeros.log'), Buffer.concat([Buffer.alloc(4096), Buffer.from(`\n${good(0)}\n${good(1)}\n`)]));
    const cases: { what: string; args: string[]; check: (r: Spawned) => void }[] = [
      { what: 'a 20 MB line', args: ['long20.log'], check: (r) => expect(lines(r)).toMatchObject({ lines: 5, events: 3, malformed: 2, problems: [{ line: 2 }, { line: 4 }] }) },
      { what: '30 MB without a final newline', args: ['nonl30.log'], check: (r) => expect(lines(r)).toMatchObject({ lines: 3, events: 2, malformed: 1, problems: [{ line: 3 }] }) },
      { what: '5 MB of random bytes', args: ['random.bin'], check: (r) => expect(lines(r)).toMatchObject({ events: 0 }) },
      { what: 'an ELF binary', args: ['elf.bin'], check: (r) => expect(lines(r)).toMatchObject({ events: 0 }) },
      // A log whose start a crash left zero-filled (copytruncate, a journal replay): read, not refused as UTF-16.
      { what: 'a log starting with 4 KiB of NULs', args: ['zeros.log'], check: (r) => expect(lines(r)).toMatchObject({ lines: 3, events: 2, malformed: 0 }) },
      ...['/dev/zero', '/dev/urandom']
        .filter((d) => existsSync(d))
        .map((d) => ({
          what: d,
          args: [d],
          check: (r: Spawned) => {
            expect(r.code).toBe(1);
            expect(r.stderr).toMatch(new RegExp(`^egress: error: cannot read ${d}: not a regular file`));
          },
        })),
    ];
    await attack(CLS, 'long lines, binary files, devices (spawned)', cases, (c) => c.what, (c) => c.check(egress(['stats', ...c.args, '--json'])));
  }, 1_200_000);

  test('a FIFO is read as a stream (process substitution, <(zcat …)) until its writer closes it', async () => {
    const cases = sample(fc.integer({ min: 1, max: 3 }), 2, 12);
    await attack(CLS, 'FIFO (spawned)', cases, (n) => `${n} writers in turn`, async (n, i) => {
      const fifo = join(dir, `fifo${i}`);
      if (spawnSync('mkfifo', [fifo]).status !== 0) throw new Error('mkfifo failed');
      writeFileSync(join(dir, 'fifo-src.log'), GOOD_TEXT);
      const writer = spawn('sh', ['-c', `cat "$1" > "$2"`, 'sh', join(dir, 'fifo-src.log'), fifo], { stdio: 'ignore' });
      try {
        expect(lines(egress(['stats', `fifo${i}`, '--json']))).toMatchObject({ lines: 2000, events: 2000, malformed: 0 });
      } finally {
        writer.kill();
      }
      void n;
    });
  }, 600_000);
});
