import type { Io } from '../io.js';
import { diagnosticsJson, failed, load, writeJson, type PolicyFlags } from '../shared.js';

export async function checkCommand(io: Io, file: string, flags: PolicyFlags): Promise<number> {
  const l = await load(io, file, flags);
  const errors = l.diagnostics.filter((d) => d.severity === 'error').length;
  const warnings = l.diagnostics.length - errors;
  const ok = !failed(l);
  const rules = { allow: l.policy?.allow.length ?? 0, deny: l.policy?.deny.length ?? 0 };
  if (flags.json) writeJson(io, { file, ok, errors, warnings, rules, diagnostics: diagnosticsJson(l) });
  else if (ok)
    io.stdout(`${file}: ok (${rules.allow} allow, ${rules.deny} deny rule${rules.deny === 1 ? '' : 's'}; ${warnings} warning${warnings === 1 ? '' : 's'})\n`);
  else io.stderr(`${file}: ${errors} error${errors === 1 ? '' : 's'}, ${warnings} warning${warnings === 1 ? '' : 's'}; nothing was changed\n`);
  return ok ? 0 : 1;
}
