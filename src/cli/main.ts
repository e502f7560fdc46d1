/**
 * argv → command. Thin: flags are parsed here and handed to a command
 * function; exit codes are decided here (0 ok, 1 failed/invalid, 2 usage).
 *
 * Each command's module is imported when that command runs, not here: a
 * static import of every command loads ~300 modules (zod and yaml among
 * them) for any command, `--version` and `--help` included, which was most
 * of a short command's time (BENCHMARKS.md, "Start-up"). So this file
 * imports only what defining the commands needs; test/cli/startup.test.ts
 * checks what `--version`, `--help` and `check` load.
 */
import { Argument, Command, CommanderError, Option } from 'commander';
import { TARGETS } from '../backends/types.js';
import { examplesHelp } from './help-text.js';
import { CommandError, EXIT, UsageError, type Io } from './io.js';
import { commandDiagnostic, writeResult, type JsonCommand } from './envelope.js';
import type { JsonDiagnostic } from '../diag/render.js';
import { colourMessages } from '../diag/colour.js';
import { DEFAULT_POLICY, policyArg } from './policy-path.js';
import { VERSION } from './version.js';

/** The global -v/--verbose, given before or after the command. */
function verboseOf(program: Command): boolean {
  return !!program.opts<{ verbose?: boolean }>().verbose;
}

/** `--silence a,b --silence c` → [a, b, c]. */
function parseCodes(v: string, prev: string[] = []): string[] {
  return [...prev, ...v.split(',').map((s) => s.trim()).filter(Boolean)];
}


/**
 * The whole command tree, without running anything: `main` parses argv with
 * it, and the build writes the man page and the shell completions from it
 * (write-share.ts), so --help, egress(8) and the completions cannot disagree.
 * A command's action reports its exit code through `onCode`.
 */
export function buildProgram(io: Io, onCode: (code: number) => void): Command {
  const program = new Command('egress')
    .description('One declarative policy file in, a host egress firewall out.')
    .version(VERSION, '-V, --version')
    .option('--no-color', 'no colour, even on a terminal (as NO_COLOR=1 does)')
    .option('-v, --verbose', 'more detail: every change of a big plan or apply, every "not probed" line of lab (they are summarised otherwise); on an internal error, its stack trace too (as EGRESS_DEBUG=1 does)')
    .exitOverride()
    .showSuggestionAfterError(true)
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr, outputError: (s, write) => write(`egress: ${s.replace(/^error: /, 'error: ')}`) });

  const jsonOpt = () => new Option('--json', 'machine-readable output');
  const silenceOpt = () => new Option('--silence <codes>', 'hide these warning codes (comma-separated)').argParser(parseCodes);
  const offlineOpt = () => new Option('--offline', 'do not resolve hostnames (they match nothing)');
  // Choices listed in --help, egress(8) and the completions; the command checks the value itself, with its own message.
  const listed = (o: Option, choices: string[]) => o.choices(choices).argParser((v: string) => v);
  // The policy argument: optional, default $EGRESS_POLICY, else /etc/egress/policy.yaml (policy-path.ts).
  const policyArgument = () => new Argument('[policy]', `the policy file (default: $EGRESS_POLICY, else ${DEFAULT_POLICY})`);

  program
    .command('init')
    .description('write a commented starter policy (to the default policy location when run as root)')
    .argument('[file]', `where to write it ("-" prints it); default: $EGRESS_POLICY if set, else as root ${DEFAULT_POLICY} (directory 0755, file 0644: a policy is not secret), else egress.yaml in this directory`)
    .option('--force', 'overwrite an existing file')
    .option('--detect', 'add a "forward:" section for the container and VM networks (Docker, podman, libvirt, LXD) found on this host')
    .addOption(jsonOpt())
    .action(async (file, o) => {
      const { initCommand } = await import('./commands/init.js');
      onCode(await initCommand(io, file, o));
    });

  program
    .command('check')
    .description('validate and lint a policy: exit 1 on errors, 0 with warnings')
    .addArgument(policyArgument())
    .option('-q, --quiet', 'print nothing when the policy is valid: errors and warnings only, the exit status says the rest')
    .addOption(jsonOpt().conflicts('quiet'))
    .addOption(silenceOpt())
    .addOption(offlineOpt())
    .option('--strict', 'a rule without a reason is an error, not a warning (as with the policy key require_reason: true)')
    .action(async (file, o) => {
      const { checkCommand } = await import('./commands/check.js');
      // -q: standard output (the "ok" lines) goes nowhere; diagnostics are on standard error.
      onCode(await checkCommand(o.quiet ? { ...io, stdout: () => {} } : io, policyArg(io, file), o));
    });

  program
    .command('compile')
    .description('print the ruleset for a target')
    .addArgument(policyArgument())
    .addOption(new Option('--target <target>', 'nft | iptables | windows | wince | wince-c | ir (the IR dump, for debugging)').choices([...TARGETS]).makeOptionMandatory())
    .option('--host <addr>', 'wince: the private host address the rules are for')
    .option('-q, --quiet', 'no stage lines on standard error (they are drawn on a terminal once compiling takes half a second)')
    .addOption(jsonOpt())
    .addOption(silenceOpt())
    .addOption(offlineOpt())
    .action(async (file, o) => {
      const { compileCommand } = await import('./commands/compile.js');
      onCode(await compileCommand(io, policyArg(io, file), o));
    });

  program
    .command('explain')
    .description('the verdict for one flow and the rule(s) that decided it')
    .addArgument(policyArgument())
    .option('--to <addr>', 'destination address (or hostname: every address it resolves to)')
    .option('--port <proto/port>', 'e.g. tcp/443, udp/53; a bare protocol means "some port"')
    .option('--icmp <type>', 'ICMP type name, e.g. echo-request')
    .option('--user <user>', 'socket owner (name or uid; default root)')
    .option('--group <group>', "socket group (name or gid; default the user's primary group)")
    .option('--via <iface>', 'output interface')
    .option('--established', 'the packet belongs to an existing connection')
    .option('--from <source|addr>', 'a forwarded flow (containers, VMs): from this forward source, or this source address')
    .option('--in <iface>', 'with --from: the interface the forwarded packet arrives on')
    .option('--flows <file>', 'explain every flow in FILE (CSV with header, or JSON lines; "-" = stdin)')
    .addOption(jsonOpt())
    .addOption(silenceOpt())
    .addOption(offlineOpt())
    .action(async (file, o) => {
      const { explainCommand } = await import('./commands/explain.js');
      onCode(await explainCommand(io, policyArg(io, file), o, io.resolver));
    });

  program
    .command('lab')
    .description(`rehearse a policy in throwaway network namespaces: apply it, probe each rule and the space around it as the named users, compare with explain (needs root; never touches your firewall)`)
    .argument('[policy]', `the policy file (default: $EGRESS_POLICY, else ${DEFAULT_POLICY} when it exists, else the starter policy of "egress init")`)
    .addOption(listed(new Option('--backend <backend>', 'rehearse with this backend, or both'), ['nft', 'iptables', 'all']).default('nft'))
    .option('--timeout <ms>', 'how long silence takes to count as a drop (default 400)')
    .option('-q, --quiet', 'no progress lines on standard error: the report only')
    .addOption(jsonOpt())
    .addOption(silenceOpt())
    .action(async (file, o) => {
      const { labCommand } = await import('./commands/lab.js');
      onCode(await labCommand(io, file, { ...o, verbose: verboseOf(program) }));
    });

  // Life cycle (issue 4): see docs/lifecycle.md.
  const backendOpt = () => listed(new Option('--backend <backend>', 'default: what is applied now, else nft'), ['nft', 'iptables']);
  program
    .command('plan')
    .description('what apply would change against the live ruleset: exit 0 = nothing, 3 = changes pending')
    .addArgument(policyArgument())
    .addOption(backendOpt())
    .addOption(jsonOpt())
    .addOption(new Option('--markdown', 'the plan as Markdown for a pull request: a summary and a diff block').conflicts('json'))
    .addOption(new Option('-q, --quiet', 'the summary line alone (the exit status says the rest), and no stage lines on standard error').conflicts(['json', 'markdown']))
    .addOption(silenceOpt())
    .action(async (file, o) => {
      const { planCommand } = await import('./commands/plan.js');
      onCode(await planCommand(io, policyArg(io, file), { ...o, verbose: verboseOf(program) }));
    });

  program
    .command('apply')
    .description('apply atomically; with --confirm, roll back unless "egress confirm" runs in time, even if this shell dies')
    .addArgument(policyArgument())
    .addOption(backendOpt())
    .option('--confirm <seconds>', 'roll back after SECONDS unless "egress confirm" runs')
    .option('--force', 'apply even if it would cut this SSH session, or over egress rules this state directory has no record of')
    .option('--reload', 'load the ruleset even if it is exactly what is live (counters restart; the rollback target becomes it)')
    .addOption(new Option('-q, --quiet', 'no table of changes: the line saying what was applied (and the confirmation deadline) alone, and no stage lines on standard error').conflicts('json'))
    .addOption(jsonOpt())
    .addOption(silenceOpt())
    .action(async (file, o) => {
      const { applyCommand } = await import('./commands/apply.js');
      onCode(await applyCommand(io, policyArg(io, file), { ...o, verbose: verboseOf(program) }));
    });

  program
    .command('confirm')
    .description('keep the apply that awaits confirmation')
    .addOption(jsonOpt())
    .action(async (o) => {
      const { confirmCommand } = await import('./commands/confirm.js');
      onCode(await confirmCommand(io, o));
    });

  program
    .command('rollback')
    .description('restore the ruleset from before the last apply')
    .addOption(jsonOpt())
    .action(async (o) => {
      const { rollbackCommand } = await import('./commands/rollback.js');
      onCode(await rollbackCommand(io, o));
    });

  program
    .command('remove')
    .description('take every rule of egress out')
    .addOption(jsonOpt())
    .action(async (o) => {
      const { removeCommand } = await import('./commands/remove.js');
      onCode(await removeCommand(io, o));
    });

  program
    .command('status')
    .description('what is live: mode, policy hash, pending confirmation, per-rule counters')
    .addOption(new Option('-q, --quiet', 'the first line alone ("status: active" or "status: inactive"), and no stage lines on standard error').conflicts('json'))
    .addOption(jsonOpt())
    .action(async (o) => {
      const { statusCommand } = await import('./commands/status.js');
      onCode(await statusCommand(io, o));
    });

  program
    .command('refresh')
    .description('re-resolve hostnames and update the live sets in place')
    .addArgument(policyArgument())
    .option('--watch', 'keep refreshing, each name when its own DNS TTL runs out')
    .option('--min-interval <seconds>', 'with --watch: never look a name up more often than this (default 30)')
    .option('--max-interval <seconds>', 'with --watch: look every name up at least this often (default 3600)')
    .addOption(jsonOpt())
    .addOption(silenceOpt())
    .action(async (file, o) => {
      const { refreshCommand } = await import('./commands/refresh.js');
      onCode(await refreshCommand(io, policyArg(io, file), o));
    });

  program
    .command('persist')
    .description('restore the last confirmed policy at boot, before the network (systemd); --off removes that')
    .option('--off', 'remove the boot unit')
    .option('--force', 'persist even when egress runs from a temporary directory (where that directory survives a reboot)')
    .addOption(jsonOpt())
    .action(async (o) => {
      const { persistCommand } = await import('./commands/persist.js');
      onCode(await persistCommand(io, o));
    });

  program.command('_auto-rollback', { hidden: true }).requiredOption('--token <token>').action(async (o) => {
    const { autoRollbackCommand } = await import('./commands/rollback.js');
    onCode(await autoRollbackCommand(io, o));
  });

  // The DNS forwarder of dns.proxy, as the life cycle starts it (kernel/forwarder.ts); runs until SIGTERM.
  program.command('_dns-forwarder', { hidden: true }).argument('<spec>').action(async (spec: string) => {
    const { forwarderProcess } = await import('../dns/main.js');
    try {
      await forwarderProcess(spec);
    } catch (e) {
      throw new CommandError(`DNS forwarder: ${(e as Error).message}`);
    }
    onCode(0);
  });

  program.command('_restore-boot', { hidden: true }).action(async () => {
    const { restoreBootCommand } = await import('./commands/persist.js');
    onCode(await restoreBootCommand(io));
  });

  program.command('_forward-jump', { hidden: true }).action(async () => {
    const { forwardJumpCommand } = await import('./commands/persist.js');
    onCode(await forwardJumpCommand(io));
  });

  // observe: stats, learn, replay, report, stale (docs/observe.md)
  const sourceOpts = (c: Command) =>
    c
      .option('--journal', 'read the kernel log from the journal (journalctl -k -o json)')
      .option('--kmsg', 'read the kernel ring buffer (/dev/kmsg)')
      .option('--since <time>', 'only events since then: 2026-11-23, 2026-11-23T09:00, or an age (30m, 2h, 7d)')
      .option('--prefix <prefix>', 'count lines with this log prefix (tagged or not; repeatable; default: every egress-tagged line)', (v: string, prev: string[] = []) => [...prev, v])
      .option('-q, --quiet', 'no progress on standard error (drawn only on a terminal), and no note of the log read when none is given');

  sourceOpts(
    program
      .command('stats')
      .description('denied connections from kernel logs: totals, over time, top destinations, by user, by rule, before/after each policy change')
      .argument('[log...]', 'log files (plain or .gz; "-" = standard input; default: the journal\'s kernel messages, else /var/log/kern.log or /var/log/messages)'),
  )
    .option('--policy <policy>', 'name hosts and rules from this policy (and count only its log prefix)')
    .option('--dns-log <file>', 'the DNS forwarder\'s log, for the "names" section (repeatable; default: dns-forwarder.log and .1 in the state directory, when there)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--follow', 'keep reading as the logs grow (survives rotation), reprinting every --interval seconds')
    .option('--interval <seconds>', 'with --follow: how often to report (default 10)')
    .option('--top <n>', 'rows per table (default 10)')
    .option('--prometheus', 'Prometheus text format (node_exporter textfile collector)')
    .option('--output <file>', 'write the report to FILE atomically instead of standard output')
    .option('--sample', 'record a sample of the live per-rule counters for "egress stale", and print nothing else')
    .addOption(jsonOpt())
    .addOption(silenceOpt())
    .addOption(offlineOpt())
    .action(async (logs, o) => {
      const { statsCommand } = await import('./commands/stats.js');
      onCode(await statsCommand(io, logs, o));
    });

  sourceOpts(
    program
      .command('learn')
      .description('allow rules that would admit what the logs show denied (audit mode), as YAML to review')
      .argument('[log...]', 'log files (plain or .gz; "-" = standard input; default: the journal\'s kernel messages, else /var/log/kern.log or /var/log/messages)'),
  )
    .option('--policy <policy>', `the policy to learn for (default: $EGRESS_POLICY, else ${DEFAULT_POLICY})`)
    .option('--dns-log <file>', 'the DNS forwarder\'s log: with dns.proxy, addresses it had just answered for a name are learned as the name (repeatable; default: the state directory\'s)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--write', 'merge the learned rules into the policy file, keeping its comments and layout')
    .addOption(jsonOpt())
    .addOption(silenceOpt())
    .addOption(offlineOpt())
    .action(async (logs, o) => {
      const { learnCommand } = await import('./commands/learn.js');
      onCode(await learnCommand(io, logs, { ...o, policy: policyArg(io, o.policy) }));
    });

  sourceOpts(
    program
      .command('replay')
      .description('what this (candidate) policy would have denied over the recorded traffic')
      .argument('<policy>')
      .argument('[log...]', 'log files (plain or .gz; "-" = standard input; default: the journal\'s kernel messages, else /var/log/kern.log or /var/log/messages)'),
  )
    .option('--check', 'exit 1 when the policy would deny anything in the logs')
    .option('--dns-log <file>', 'the DNS forwarder\'s log: with dns.proxy, a connection to an address it had just answered for a name is decided by the rules naming it (repeatable; default: the state directory\'s)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--top <n>', 'rows per table (default 10)')
    .option('--prometheus', 'Prometheus text format')
    .option('--output <file>', 'write the report to FILE atomically instead of standard output')
    .addOption(jsonOpt())
    .addOption(silenceOpt())
    .addOption(offlineOpt())
    .action(async (file, logs, o) => {
      const { replayCommand } = await import('./commands/replay.js');
      onCode(await replayCommand(io, file, logs, o));
    });

  sourceOpts(
    program
      .command('report')
      .description('one self-contained HTML page: denials over time with each apply, rollback and refresh marked, enforce beside audit, kernel counters, stale rules, the policy as a picture')
      .addArgument(policyArgument())
      .argument('[log...]', 'log files (plain or .gz; "-" = standard input; default /var/log/kern.log or /var/log/messages)'),
  )
    .option('--until <time>', 'only events before then (as --since)')
    .option('--top <n>', 'rows per top list (default 10)')
    .option('--days <n>', 'stale rules: no hits in N days (default 30)')
    .option('--output <file>', 'write the page to FILE atomically ("-" = standard output; default egress-report.html)')
    .addOption(new Option('--json', 'machine-readable output: where the page went and the data drawn on it (not with --output -)'))
    .addOption(silenceOpt())
    .addOption(offlineOpt())
    .action(async (file, logs, o) => {
      const { reportCommand } = await import('./commands/report.js');
      onCode(await reportCommand(io, policyArg(io, file), logs, { ...o, version: VERSION }));
    });

  program
    .command('stale')
    .description('rules with no hits in N days, from counter samples ("egress stats --sample")')
    .addArgument(policyArgument())
    .option('--days <n>', 'how many days without hits (default 30)')
    .addOption(jsonOpt())
    .addOption(silenceOpt())
    .addOption(offlineOpt())
    .action(async (file, o) => {
      const { staleCommand } = await import('./commands/stale.js');
      onCode(await staleCommand(io, policyArg(io, file), o));
    });

  for (const c of program.commands) {
    const help = examplesHelp(c.name());
    if (help) c.addHelpText('after', help);
  }
  return program;
}

export async function main(argv: string[], given: Io): Promise<number> {
  let code: number = EXIT.ok;
  // Colour where the stream wants it (processIo) unless --no-color; errors and warnings on stderr are coloured here, once for all commands.
  let program: Command | undefined;
  const on = (stream: 'stdout' | 'stderr') => !!given.colour?.[stream] && program?.opts<{ color?: boolean }>().color !== false;
  // --json: whether the command printed its envelope (envelope.ts); when it fails before it does, main prints one.
  let sent = false;
  const io: Io = {
    ...given,
    stderr: (s) => given.stderr(colourMessages(s, on('stderr'))),
    onResult: () => void (sent = true),
    colour: {
      get stdout() {
        return on('stdout');
      },
      get stderr() {
        return on('stderr');
      },
    },
  };
  program = buildProgram(io, (c) => void (code = c));
  // The command to answer for in JSON, when --json was asked: the one commander dispatched to, else the first word that names one.
  let dispatched: Command | undefined;
  program.hook('preAction', (_p, action) => void (dispatched = action));
  const failure = (c: number, diagnostic: JsonDiagnostic): number => {
    const command = jsonCommand(program!, argv, dispatched);
    if (command && !sent) writeResult(io, command, { ok: false, result: null, diagnostics: [diagnostic] });
    return c;
  };
  try {
    if (argv.length === 0) {
      io.stderr(program.helpInformation());
      return EXIT.usage;
    }
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return EXIT.ok;
      return failure(EXIT.usage, commandDiagnostic('usage', e.message.replace(/^error: /, '')));
    }
    if (e instanceof UsageError) {
      io.stderr(`egress: error: ${e.message}\n`);
      return failure(EXIT.usage, commandDiagnostic('usage', e.message));
    }
    if (e instanceof CommandError) {
      io.stderr(`egress: error: ${e.message}\n`);
      return failure(EXIT.failed, commandDiagnostic('failed', e.message));
    }
    const err = e as Error;
    const message = `internal error: ${err?.message ?? String(e)} (please report this)`;
    io.stderr(`egress: ${message}\n`);
    const verbose = verboseOf(program) || io.env.EGRESS_DEBUG === '1';
    if (verbose && err?.stack) io.stderr(err.stack + '\n');
    return failure(EXIT.failed, commandDiagnostic('internal', message));
  }
}

/**
 * The command whose envelope a failure is printed as, when `--json` was
 * given to a command that takes it: the one dispatched to, else (a usage
 * error commander found before dispatching) the first argument that names
 * one. Undefined: no JSON was asked for.
 */
function jsonCommand(program: Command, argv: readonly string[], dispatched: Command | undefined): JsonCommand | undefined {
  const takesJson = (c: Command) => c.options.some((o) => o.long === '--json');
  if (dispatched) return takesJson(dispatched) && dispatched.opts<{ json?: boolean }>().json ? (dispatched.name() as JsonCommand) : undefined;
  if (!argv.includes('--json')) return undefined;
  const named = argv.map((a) => program.commands.find((c) => c.name() === a)).find((c) => c);
  return named && takesJson(named) ? (named.name() as JsonCommand) : undefined;
}
