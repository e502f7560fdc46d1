import { describe, expect, test } from 'vitest';
import { STARTER_POLICY } from '../../policy/starter.js';
import { loadText } from '../../../test/helpers.js';
import { withDetectedSources } from './init.js';

describe('init --detect', () => {
  test('nothing found: the starter policy as it is', () => {
    expect(withDetectedSources(STARTER_POLICY, [])).toBe(STARTER_POLICY);
  });

  test('found networks become forward sources in a policy that loads, before the rules', async () => {
    const text = withDetectedSources(STARTER_POLICY, [
      { name: 'docker', interfaces: ['docker0', 'br-*'], networks: ['172.17.0.0/16', 'fd00:17::/64'] },
      { name: 'libvirt', interfaces: ['virbr0'], networks: [] },
    ]);
    expect(text.indexOf('forward:')).toBeLessThan(text.indexOf('\nallow:'));
    const l = await loadText(text);
    expect(l.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    expect(l.policy!.forward!.sources.map((s) => [s.name, s.interfaces.map((i) => i.name), s.networks?.map((n) => n.text)])).toEqual([
      ['docker', ['docker0', 'br-*'], ['172.17.0.0/16', 'fd00:17::/64']],
      ['libvirt', ['virbr0'], undefined],
    ]);
    expect(l.policy!.forward!.unlisted).toBe('warn');
  });
});
