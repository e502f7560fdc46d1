import { chmodSync, lstatSync, mkdirSync, writeFileSync, type Stats } from 'node:fs';
import { errnoText } from '../../diag/errno.js';
import { writeFileAtomic } from '../../kernel/atomic.js';
import { dirname, resolve } from 'node:path';
import { STARTER_POLICY as STARTER } from '../../policy/starter.js';
import { inspectForwarding, suggestSources, type SourceSuggestion } from '../../kernel/forward-host.js';
import { realExecer } from '../../kernel/exec.js';
import type { KernelSeams } from '../kernel-flags.js';
import { CommandError, type Io } from '../io.js';
import { defaultPolicyOf, present } from '../policy-path.js';
import { writeResult } from '../envelope.js';

/**
 * The starter policy with a `forward:` section for the container and VM
 * networks found on this host (`init --detect`), or unchanged when none were.
 * The sources govern nothing until a rule's `from` names them, and until
 * then their traffic is judged by `forward.default`: the section says so.
 */
export function withDetectedSources(starter: string, found: readonly SourceSuggestion[]): string {
  if (!found.length) return starter;
  const list = (xs: readonly string[]) => `[${xs.map((x) => JSON.stringify(x)).join(', ')}]`;
  const lines = [
    '# Forwarded traffic (containers, VMs): `egress init --detect` found these networks on this host.',
    '# Their connections out are judged like this host\'s: a rule governs them when its "from" names',
    '# them (from: [host, docker]); what no rule admits gets forward.default. Check the networks.',
    'forward:',
    '  sources:',
    ...found.map((s) => `    ${s.name}: { interfaces: ${list(s.interfaces)}${s.networks.length ? `, networks: ${list(s.networks)}` : ''} }`),
    '  unlisted: warn          # forwarded flows from no source: counted and logged, let through',
    '',
  ];
  const at = starter.search(/^allow:/m);
  return at < 0 ? `${starter}\n${lines.join('\n')}` : `${starter.slice(0, at)}${lines.join('\n')}\n${starter.slice(at)}`;
}

/**
 * Where init writes without FILE: the default policy location ($EGRESS_POLICY,
 * else /etc/egress/policy.yaml) when that is set or this runs as root; else,
 * as a user who cannot write /etc, egress.yaml in the working directory.
 */
export function initTarget(io: Io, uid: number | undefined): { target: string; isDefault: boolean } {
  const d = defaultPolicyOf(io);
  return d.from === 'EGRESS_POLICY' || uid === 0 ? { target: d.path, isDefault: true } : { target: 'egress.yaml', isDefault: false };
}

/** Write the starter policy to FILE (never over an existing file unless --force), or print it with "-". */
export async function initCommand(io: Io, file: string | undefined, flags: { force?: boolean; json?: boolean; detect?: boolean }, seams: KernelSeams = {}): Promise<number> {
  const { target, isDefault } = file !== undefined ? { target: file, isDefault: false } : initTarget(io, seams.uid ?? io.uid ?? process.getuid?.());
  let found: SourceSuggestion[] = [];
  if (flags.detect) {
    try {
      found = suggestSources(await inspectForwarding(seams.execer ?? realExecer(), seams.netns));
    } catch (e) {
      throw new CommandError(`--detect: cannot read this host's interfaces: ${(e as Error).message.split('\n')[0]}`);
    }
    io.stderr(found.length ? `detected: ${found.map((s) => `${s.name} (${[...s.interfaces, ...s.networks].join(', ')})`).join('; ')}\n` : 'detected: no container or VM networks on this host; no "forward:" section\n');
  }
  const STARTER_POLICY = withDetectedSources(STARTER, found);
  if (target === '-') {
    if (flags.json) writeResult(io, 'init', { ok: true, result: { file: '-', written: false, policy: STARTER_POLICY, ...(flags.detect ? { detected: found } : {}) } });
    else io.stdout(STARTER_POLICY);
    return 0;
  }
  const path = resolve(io.cwd, target);
  // lstat, not exists: a dangling link is something there too, and is never followed (D17).
  const there = lstatOrUndefined(path);
  if (there && !flags.force) throw new CommandError(`${target} already exists; not overwriting it (use --force)`);
  if (there && !there.isFile()) throw new CommandError(`${target} is not a regular file (a link, a directory…); not writing through it`);
  try {
    // The default location is the package's conffile's: directory 0755, file 0644 whatever the umask (a policy is no secret, and
    // non-root users may run check, explain and compile on it).
    const dir = dirname(path);
    if (isDefault && !present(dir)) {
      mkdirSync(dir, { recursive: true, mode: 0o755 });
      chmodSync(dir, 0o755);
    }
    // --force replaces the file (a new one, in place of the old name), never writes into what a link names.
    if (there) writeFileAtomic(path, STARTER_POLICY, 0o644);
    else writeFileSync(path, STARTER_POLICY, { mode: 0o644, flag: 'wx' });
    if (isDefault) chmodSync(path, 0o644);
  } catch (e) {
    throw new CommandError(`cannot write ${target}: ${errnoText(e)}`);
  }
  if (flags.json) writeResult(io, 'init', { ok: true, result: { file: target, written: true, ...(flags.detect ? { detected: found } : {}) } });
  else if (isDefault) io.stdout(`wrote ${target}, the default policy (commands read it when given none): edit the resolver and mirror entries, then run "egress check" and "egress lab"\n`);
  else
    io.stdout(
      `wrote ${target}: edit the resolver and mirror entries, then run "egress check ${target}" and "egress lab ${target}"` +
        (file === undefined ? ` (not the default policy ${defaultPolicyOf(io).path}, which "egress init" writes as root)` : '') +
        '\n',
    );
  return 0;
}

function lstatOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}
