import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { loadText } from '../../../test/helpers.js';
import { locate } from '../../diag/render.js';
import type { Diagnostic } from '../../diag/diagnostic.js';
import { winceBackend } from './emit.js';
import { ROOT } from '../../../test/paths.js';


async function compile(yaml: string, host = '192.0.2.101,2001:db8::101') {
  const l = await loadText(yaml, { hosts: { 'mirror.example.org': { ipv4: ['203.0.113.80'], ipv6: ['2001:db8:80::1'] } } });
  expect(l.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  return { ...winceBackend.emit(l.ir!, { host }), sources: l.sources };
}

/** The .reg text as key → value name → raw value text. */
function parseReg(text: string): Map<string, Map<string, string>> {
  const keys = new Map<string, Map<string, string>>();
  let cur: Map<string, string> | undefined;
  for (const line of text.split('\n')) {
    const k = /^\[HKEY_LOCAL_MACHINE\\COMM\\Firewall\\Rules\\([^\]]+)\]$/.exec(line);
    if (k) keys.set(k[1]!, (cur = new Map()));
    const v = /^\s+"([A-Za-z]+)"=(.*?)\s+; [^;]*$/.exec(line);
    if (v) cur!.set(v[1]!, v[2]!);
  }
  return keys;
}

describe('the documentation example (seed 003)', () => {
  test('allow TCP 25 and 110 for 192.168.0.101, block the rest: the same values as the seed', async () => {
    const { value } = await compile(readFileSync(join(ROOT, 'examples/wince-mail-host.yaml'), 'utf8'), '192.168.0.101');
    const reg = parseReg(value!.text);
    const host = 'hex:02,00,00,00,C0,A8,00,65';
    expect(reg.get('egress-smtp')).toEqual(new Map([['Mask', 'dword:25'], ['Flags', 'dword:12'], ['PrivateHost', host], ['Protocol', 'dword:6'], ['Port', 'dword:19'], ['Description', '"send mail"']]));
    expect(reg.get('egress-pop3')).toEqual(new Map([['Mask', 'dword:25'], ['Flags', 'dword:12'], ['PrivateHost', host], ['Protocol', 'dword:6'], ['Port', 'dword:6E'], ['Description', '"fetch mail"']]));
    const block = reg.get('egress.default-ipv4')!;
    expect([block.get('Mask'), block.get('Flags'), block.get('PrivateHost')]).toEqual(['dword:1', 'dword:11', host]);
    expect([...block.keys()]).toEqual(['Mask', 'Flags', 'PrivateHost', 'Description']);
    // Without an IPv6 address for the host, its IPv6 side is not covered, and the file says so.
    expect(value!.text).toMatch(/^; ipv6: NOT COVERED/m);
  });

  test('a host given only one family gets a warning naming the other, and exit status stays 0', async () => {
    const one = await compile(readFileSync(join(ROOT, 'examples/wince-mail-host.yaml'), 'utf8'), '192.168.0.101');
    expect(one.diagnostics.map((d) => [d.severity, d.code, d.message, d.hint])).toEqual([
      ['warning', 'family-uncovered', 'backend "wince": --host gives no ipv6 address, so the host\'s ipv6 traffic is not filtered by these rules', 'if the host has ipv6, pass both addresses: --host 192.168.0.101,<ipv6 address>'],
    ]);
    const both = await compile(readFileSync(join(ROOT, 'examples/wince-mail-host.yaml'), 'utf8'), '192.168.0.101,2001:db8::65');
    expect(both.diagnostics).toEqual([]);
  });
});

describe('encodings', () => {
  test('public subnets, port ranges, ICMP types and IPv6', async () => {
    const { value } = await compile(`version: 1
default: drop
allow:
  - name: web
    reason: web
    to: [198.51.100.0/24, "2001:db8:1::/48"]
    ports: [tcp/8000-8099]
  - name: ping
    reason: ping
    to: [203.0.113.7]
    icmp: [echo-request]
`);
    const reg = parseReg(value!.text);
    expect(reg.get('egress-web-1')).toEqual(
      new Map([
        ['Mask', 'dword:827'],
        ['Flags', 'dword:12'],
        ['PrivateHost', 'hex:02,00,00,00,C0,00,02,65'],
        ['PublicHost', 'hex:02,00,00,00,C6,33,64,00'],
        ['PublicHostMask', 'hex:FF,FF,FF,00'],
        ['Protocol', 'dword:6'],
        ['PortMin', 'dword:1F40'],
        ['PortMax', 'dword:1FA3'],
        ['Description', '"web"'],
      ]),
    );
    expect(reg.get('egress-web-2')).toEqual(
      new Map([
        ['Mask', 'dword:1027'],
        ['Flags', 'dword:12'],
        ['PrivateHost', 'hex:17,00,00,00,20,01,0D,B8,00,00,00,00,00,00,00,00,00,00,01,01'],
        ['PublicHost', 'hex:17,00,00,00,20,01,0D,B8,00,01,00,00,00,00,00,00,00,00,00,00'],
        ['PublicHostPrefixLength', 'dword:30'],
        ['Protocol', 'dword:6'],
        ['PortMin', 'dword:1F40'],
        ['PortMax', 'dword:1FA3'],
        ['Description', '"web"'],
      ]),
    );
    // echo-request is ICMP type 8 over IPv4; 203.0.113.7 is a single host, so no mask.
    expect(reg.get('egress-ping')).toEqual(
      new Map([
        ['Mask', 'dword:2B'],
        ['Flags', 'dword:12'],
        ['PrivateHost', 'hex:02,00,00,00,C0,00,02,65'],
        ['PublicHost', 'hex:02,00,00,00,CB,00,71,07'],
        ['Protocol', 'dword:1'],
        ['Type', 'dword:8'],
        ['Description', '"ping"'],
      ]),
    );
  });

  test('descriptions: .reg escapes, non-ASCII as UTF-16LE hex', async () => {
    const { value } = await compile(`version: 1
allow:
  - name: a
    reason: 'say "hi" \\ there'
    ports: [tcp/1]
  - name: b
    reason: "it\u2019s"
    ports: [tcp/2]
`);
    expect(value!.text).toContain(`"Description"="say \\"hi\\" \\\\ there"`);
    expect(value!.text).toContain('"Description"=hex(1):69,00,74,00,19,20,73,00,00,00');
  });
});

describe('semantics: deny wins, or the policy is refused', () => {
  test('an allow is written minus an overlapping deny, so no emitted allow overlaps a block', async () => {
    const { value } = await compile(
      `version: 1
default: drop
allow:
  - name: https
    reason: https anywhere
    ports: [tcp/443]
deny:
  - name: metadata
    reason: no metadata
    to: [169.254.169.254]
`,
      '192.0.2.101',
    );
    const reg = parseReg(value!.text);
    const https = [...reg.keys()].filter((k) => k.startsWith('egress-https-'));
    // 0.0.0.0/0 minus one address is 32 subnets.
    expect(https).toHaveLength(32);
    expect(reg.get('egress-metadata')!.get('PublicHost')).toBe('hex:02,00,00,00,A9,FE,A9,FE');
    expect(reg.get('egress-metadata')!.get('Flags')).toBe('dword:11');
  });

  test('default accept: only the denies, as blocks; a deny except a port is split', async () => {
    const { value } = await compile(`version: 1
default: accept
allow:
  - name: web
    reason: redundant under accept
    ports: [tcp/80]
deny:
  - name: smtp
    reason: no mail but 587
    ports: [tcp/25, tcp/465, tcp/587]
    except: { ports: [tcp/587] }
`);
    const reg = parseReg(value!.text);
    expect([...reg.keys()].filter((k) => !k.startsWith('egress.log'))).toEqual(['egress-smtp-1', 'egress-smtp-2', 'egress-smtp-3', 'egress-smtp-4']);
    expect([...reg.values()].map((v) => v.get('Port')).filter(Boolean)).toEqual(['dword:19', 'dword:1D1', 'dword:19', 'dword:1D1']);
    expect(value!.text).toMatch(/^; ipv4: default accept, so only the denies are written/m);
  });
});

test('an allow to 0.0.0.0/0 and ::/0 admits everything: only the denies are written', async () => {
  const { value } = await compile('version: 1\nallow:\n  - name: all\n    to: [0.0.0.0/0, "::/0"]\ndeny:\n  - name: smtp\n    ports: [tcp/25]\n');
  expect([...parseReg(value!.text).keys()]).toEqual(['egress-smtp-1', 'egress-smtp-2', 'egress.log-ipv4', 'egress.log-ipv6']);
});

describe('refusals name rule, selector and backend', () => {
  async function refuse(yaml: string, host?: string): Promise<[Diagnostic[], string[]]> {
    const r = await compile(yaml, host);
    expect(r.value).toBeUndefined();
    return [r.diagnostics, r.diagnostics.map((d) => (d.span ? `${locate(r.sources, d.span)!.line}:${locate(r.sources, d.span)!.col}` : '-'))];
  }

  test.each([
    ['user', 'allow:\n  - name: mail\n    user: postfix\n    ports: [tcp/25]\n', 'rule "mail": selector "user" cannot be expressed by backend "wince"', '4:5'],
    ['group', 'allow:\n  - name: mail\n    group: mail\n    ports: [tcp/25]\n', 'rule "mail": selector "group" cannot be expressed by backend "wince"', '4:5'],
    ['via', 'allow:\n  - name: vpn\n    via: [wg0]\n', 'rule "vpn": selector "via" cannot be expressed by backend "wince"', '4:5'],
    ['hostnames', 'allow:\n  - name: mirror\n    to: [mirror.example.org]\n', 'rule "mirror": selector "to" cannot be expressed by backend "wince"', '4:5'],
    ['sctp ports', 'allow:\n  - name: s\n    ports: [sctp/9000]\n', 'rule "s": selector "ports" cannot be expressed by backend "wince"', '4:5'],
    ['except on user', 'deny:\n  - name: smtp\n    ports: [tcp/25]\n    except: { user: postfix }\n', 'rule "smtp": selector "except" cannot be expressed by backend "wince"', '5:5'],
    ['except leaving every protocol but one', 'deny:\n  - name: d\n    to: [198.51.100.0/24]\n    except: { ports: [tcp/443] }\n', 'rule "d": selector "except" cannot be expressed by backend "wince"', '5:5'],
    [
      'deny overlapping an allow on a narrower port',
      'default: drop\nallow:\n  - name: lan\n    to: [198.51.100.0/24]\ndeny:\n  - name: smtp\n    ports: [tcp/25]\n',
      'rule "smtp": selector "ports" cannot be expressed by backend "wince"',
      '8:5',
    ],
    ['audit mode', 'mode: audit\nallow: []\n', 'mode "audit" cannot be expressed by backend "wince"', '-'],
    ['builtin off', 'builtins: { established: false }\nallow: []\n', 'builtin "established: false" cannot be expressed by backend "wince"', '-'],
  ])('%s', async (_name, body, message, at) => {
    const [ds, where] = await refuse(`version: 1\n${body}`);
    expect(ds.map((d) => [d.code, d.message])).toContainEqual(['unsupported-selector', message]);
    expect(where[ds.findIndex((d) => d.message === message)]).toBe(at);
  });

  test('the overlap refusal points at the allow too', async () => {
    const [ds] = await refuse('version: 1\ndefault: drop\nallow:\n  - name: lan\n    to: [198.51.100.0/24]\ndeny:\n  - name: smtp\n    ports: [tcp/25]\n');
    expect(ds[0]!.notes?.[0]?.message).toBe('allow rule "lan" is here');
    expect(ds[0]!.hint).toMatch(/more specific allow override a block/);
  });

  test.each([
    ['nonsense', '--host "nonsense" is not an IPv4 or IPv6 address'],
    ['192.0.2.1,192.0.2.2', '--host gives two ipv4 addresses; the rules are for one host'],
  ])('--host %s', async (host, message) => {
    const [ds] = await refuse('version: 1\nallow: []\n', host);
    expect(ds.map((d) => [d.code, d.message])).toEqual([['bad-address', message]]);
  });

  test('a reason with NUL is refused, not cut (check refuses it first; the backend does too, given such an IR)', async () => {
    const l = await loadText('version: 1\nallow:\n  - name: a\n    reason: x\n    ports: [tcp/1]\n');
    const ir = structuredClone(l.ir!);
    ir.rules[0]!.reason = 'x\0y';
    const r = winceBackend.emit(ir, { host: '192.0.2.101,2001:db8::101' });
    expect(r.value).toBeUndefined();
    expect(r.diagnostics.map((d) => d.message)).toEqual(['rule "a": its reason cannot be carried by backend "wince"']);
  });
});
