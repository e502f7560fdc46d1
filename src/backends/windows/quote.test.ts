import { describe, expect, test } from 'vitest';
import { psString } from './quote.js';

describe('psString', () => {
  test.each([
    ['', "''"],
    ['dns', "'dns'"],
    ["it's", "'it''s'"],
    ["''", "''''''"],
    ['$(Remove-Item C:\\ -Recurse)', "'$(Remove-Item C:\\ -Recurse)'"],
    ['`n "double" @{}', "'`n \"double\" @{}'"],
    ['it\u2019s', "('it' + [char]0x2019 + 's')"],
    ['\u2018quoted\u2019', "('' + [char]0x2018 + 'quoted' + [char]0x2019)"],
    ['\u201a\u201b', "('' + [char]0x201A + [char]0x201B)"],
    ["x'; Remove-NetFirewallRule -All; '", "'x''; Remove-NetFirewallRule -All; '''"],
    ["x\u2019; Remove-NetFirewallRule -All; \u2018", "('x' + [char]0x2019 + '; Remove-NetFirewallRule -All; ' + [char]0x2018)"],
    ['line1\nline2', "('line1' + [char]0x000A + 'line2')"],
    ['caf\u00e9', "('caf' + [char]0x00E9)"],
    ['\u{1F600}', "('' + [char]0xD83D + [char]0xDE00)"],
  ])('%j → %s', (input, want) => {
    expect(psString(input)).toBe(want);
  });

  test.each([['nul\0inside'], ['lone \ud800 high'], ['lone \udc00 low'], ['\ud800']])('refuses %j', (input) => {
    expect(psString(input)).toBeUndefined();
  });

  test('output is printable ASCII only', () => {
    expect(psString('\u2018\u2019\u201a\u201b\u201c\u201d\u00a0\u2028\t\r\n')).toMatch(/^[\x20-\x7e]+$/);
  });
});
