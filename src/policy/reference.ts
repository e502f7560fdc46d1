/**
 * The policy reference (docs/policy-reference.md), generated from the schema's
 * descriptions so the docs and the validator cannot drift apart.
 */
import { policyJsonSchema } from './schema.js';

type Schema = {
  type?: string | string[];
  description?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  anyOf?: Schema[];
  items?: Schema;
  enum?: unknown[];
  const?: unknown;
  pattern?: string;
  additionalProperties?: Schema | boolean;
};

function typeOf(s: Schema): string {
  if (s.const !== undefined) return `\`${JSON.stringify(s.const)}\``;
  if (s.enum) return s.enum.map((e) => `\`${String(e)}\``).join(' \\| ');
  if (s.anyOf) return [...new Set(s.anyOf.map(typeOf))].join(' or ');
  if (s.type === 'array' && s.items) return `list of ${typeOf(s.items)}`;
  if (s.type === 'object' && s.properties && 'file' in s.properties) return '`{ file: PATH }`';
  if (s.type === 'object') return 'mapping';
  if (s.type === 'integer' || s.type === 'number') return 'number';
  return String(s.type ?? 'any');
}

function table(props: Record<string, Schema>, required: string[] = []): string {
  const rows = Object.entries(props).map(
    ([k, v]) => `| \`${k}\`${required.includes(k) ? ' (required)' : ''} | ${typeOf(v)} | ${(v.description ?? '').replace(/\|/g, '\\|')} |`,
  );
  return ['| key | type | meaning |', '| --- | --- | --- |', ...rows].join('\n');
}

export function policyReference(): string {
  const s = policyJsonSchema() as Schema;
  const p = s.properties!;
  const rule = p.allow!.items!;
  const except = rule.properties!.except!.anyOf![0]!;
  return [
    '# Policy reference',
    '',
    '<!-- Generated from src/policy/schema.ts by `npm run build`; do not edit by hand. -->',
    '',
    s.description ?? '',
    '',
    '## Top level',
    '',
    table(p, s.required),
    '',
    '## `log`',
    '',
    table(p.log!.properties!),
    '',
    '## `builtins`',
    '',
    table(p.builtins!.properties!),
    '',
    '## `dns`',
    '',
    'With `proxy: true`, a rule\'s names follow DNS: the forwarder publishes each address it answers',
    'for a name into the rule\'s kernel set before the program receives the answer. An allow rule\'s',
    'exact names are also resolved when the ruleset loads, as without the proxy (so /etc/hosts pins keep',
    'working); wildcard names have only the addresses the forwarder answered. A deny rule\'s names',
    '(exact or wildcard) are answered REFUSED by the forwarder and are not denied by address: CDN',
    'addresses are shared between names. Names in `except` are resolved when the ruleset loads.',
    '',
    table(p.dns!.properties!),
    '',
    '## `forward`',
    '',
    'Traffic the host routes for containers and VMs crosses the forward hook, never output: without',
    'this section it is not governed at all. A forwarded packet belongs to a source when it arrives on',
    'one of its `interfaces` and, where `networks` are given for its family, comes from one of them',
    '(with interfaces, a family no network is written for is matched by interface alone). Sources may',
    'overlap. A rule governs the sources its `from` names, with the same semantics as for the host:',
    'deny wins, then allow, then `forward.default`. Flows into a source (to a container: published',
    'ports, container to container) are not egress and are left to the other firewalls. `user` and',
    '`group` cannot match forwarded packets (no socket owner): a rule that has them and a source in',
    '`from` is an error. Under `dns.proxy`, DNS from sources with interfaces goes to the forwarder too.',
    'See docs/forward.md.',
    '',
    table(p.forward!.properties!, p.forward!.required),
    '',
    '### A source (`forward.sources.NAME`)',
    '',
    table((p.forward!.properties!.sources!.additionalProperties as Schema).properties!),
    '',
    '## Rules (`allow` and `deny` items)',
    '',
    'A rule matches a packet when every selector it gives matches. Order in the file never matters:',
    'builtins accept first, then any matching deny (unless its `except` matches) denies, then any',
    'matching allow accepts, then `default` decides.',
    '',
    table(rule.properties!, rule.required),
    '',
    '## `except` (deny rules only)',
    '',
    table(except.properties!),
    '',
    '## Editor support',
    '',
    'The same schema ships as `schema/policy.schema.json` (package export `egress/schema.json`).',
    'With the YAML language server (VS Code "YAML" extension, Neovim, Helix, …) put this first line in a policy:',
    '',
    '```yaml',
    '# yaml-language-server: $schema=./node_modules/egress/schema/policy.schema.json',
    '```',
    '',
  ].join('\n');
}
