import { describe, expect, test } from 'vitest';
import { parseFlow } from './flow-parse.js';

const accounts = () => ({
  users: new Map([
    ['root', 0],
    ['www-data', 33],
    ['web-alias', 33],
  ]),
  groups: new Map([
    ['root', 0],
    ['www-data', 33],
    ['web', 33],
    ['staff', 50],
  ]),
  primaryGroup: new Map([[33, 33]]),
});

describe('parseFlow: owners by number and primary groups', () => {
  test("a numeric user is named by the table's first name for it, and gets that user's primary group, named the same way", () => {
    const f = parseFlow({ to: '192.0.2.1', port: 'tcp/443', user: '33' }, accounts());
    expect(f.user).toEqual({ id: 33, name: 'www-data' });
    expect(f.group).toEqual({ id: 33, name: 'www-data' });
  });

  test('a numeric group is named; an id no table holds stays a number', () => {
    const a = accounts();
    expect(parseFlow({ to: '192.0.2.1', user: 'root', group: '50' }, a).group).toEqual({ id: 50, name: 'staff' });
    expect(parseFlow({ to: '192.0.2.1', user: '4000' }, a).user).toEqual({ id: 4000 });
  });

  test('a name added to a table after flows were parsed against it is found (lab adds spare ids)', () => {
    const a = accounts();
    expect(parseFlow({ to: '2001:db8::1', user: '4000' }, a).user).toEqual({ id: 4000 });
    a.users.set('spare', 4000);
    expect(parseFlow({ to: '2001:db8::1', user: '4000' }, a).user).toEqual({ id: 4000, name: 'spare' });
  });
});
