import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { parse } from 'yaml';
import { policyReference } from './reference.js';
import { PolicySchema, policyJsonSchema } from './schema.js';
import { STARTER_POLICY } from './starter.js';
import { ROOT } from '../../test/paths.js';


describe('generated artifacts are current', () => {
  test('schema/policy.schema.json', () => {
    expect(JSON.parse(readFileSync(join(ROOT, 'schema/policy.schema.json'), 'utf8'))).toEqual(policyJsonSchema());
  });
  test('docs/policy-reference.md', () => {
    expect(readFileSync(join(ROOT, 'docs/policy-reference.md'), 'utf8')).toBe(policyReference());
  });
});

describe('the JSON Schema and the validator agree', () => {
  test('the starter policy is valid for both', () => {
    expect(PolicySchema.safeParse(parse(STARTER_POLICY)).success).toBe(true);
    const s = policyJsonSchema() as { additionalProperties: boolean; required: string[] };
    expect(s.additionalProperties).toBe(false);
    expect(s.required).toEqual(['version']);
  });
  test('every rule field has a description saying what omitted means', () => {
    const s = policyJsonSchema() as { properties: { allow: { items: { properties: Record<string, { description?: string }> } } } };
    for (const [k, v] of Object.entries(s.properties.allow.items.properties)) expect(v.description, k).toMatch(/Omitted|Required/);
  });
});
