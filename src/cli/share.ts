/**
 * egress(8), the bash completion and the zsh completion, written from the
 * command tree that parses the command line (buildProgram in main.ts) and
 * the examples of --help (help-text.ts): a command, option, choice or
 * example exists in all of them or in none. write-share.ts puts them in
 * dist/share/ at build time (egress.8, egress.bash, _egress).
 */
import { Help, type Command, type Option } from 'commander';
import { EXAMPLES, type Example } from './help-text.js';
import { DEFAULT_POLICY } from './policy-path.js';

/** What an argument or an option's value completes to. */
type Completes = { kind: 'files' } | { kind: 'words'; words: readonly string[] } | { kind: 'commands' } | { kind: 'none' };

export interface OptionDoc {
  /** The flags as --help shows them, e.g. `-q, --quiet` or `--target <target>`. */
  term: string;
  names: string[];
  /** The value's name, when the option takes one. */
  value?: string;
  completes: Completes;
  description: string;
  repeatable: boolean;
}

export interface ArgumentDoc {
  name: string;
  required: boolean;
  variadic: boolean;
  description: string;
  completes: Completes;
}

export interface CommandDoc {
  name: string;
  /** `check [options] [policy]` */
  term: string;
  description: string;
  args: ArgumentDoc[];
  options: OptionDoc[];
  examples: readonly Example[];
}

export interface ProgramDoc {
  version: string;
  description: string;
  options: OptionDoc[];
  commands: CommandDoc[];
}

/** Names of arguments and option values that are paths. */
const PATH_VALUES = new Set(['file', 'policy', 'log']);

function completesFor(name: string, choices: readonly string[] | undefined): Completes {
  if (choices?.length) return { kind: 'words', words: choices };
  if (name === 'command') return { kind: 'commands' };
  return PATH_VALUES.has(name) ? { kind: 'files' } : { kind: 'none' };
}

function optionDoc(help: Help, o: Option): OptionDoc {
  const value = /[<[]([^>\]]+?)(\.\.\.)?[>\]]/.exec(o.flags)?.[1];
  return {
    term: help.optionTerm(o),
    names: [o.short, o.long].filter((n): n is string => !!n),
    ...(value ? { value } : {}),
    completes: value ? completesFor(value, o.argChoices) : { kind: 'none' },
    description: help.optionDescription(o),
    // The options with their own parser accumulate (--silence a --silence b); choices also install a parser.
    repeatable: !!o.parseArg && !o.argChoices,
  };
}

/** The visible tree: hidden commands (_auto-rollback, …) are not in it; the implicit `help` command is. */
export function describeProgram(program: Command): ProgramDoc {
  const help = program.createHelp();
  return {
    version: program.version() ?? '',
    description: program.description(),
    options: help.visibleOptions(program).map((o) => optionDoc(help, o)),
    commands: help.visibleCommands(program).map((c) => ({
      name: c.name(),
      term: help.subcommandTerm(c),
      description: c.description(),
      args: c.registeredArguments.map((a) => ({
        name: a.name(),
        required: a.required,
        variadic: a.variadic,
        description: help.argumentDescription(a),
        completes: completesFor(a.name(), a.argChoices),
      })),
      options: help.visibleOptions(c).map((o) => optionDoc(help, o)),
      examples: EXAMPLES[c.name()] ?? [],
    })),
  };
}

// ---------------------------------------------------------------- man page

/** Text for a roff line: backslashes escaped, and a line never starts with a control character. */
function roffText(s: string): string {
  return s.replace(/\\/g, '\\e').replace(/^([.'])/gm, '\\&$1');
}

/** Literal text (commands, options, paths): also every hyphen a minus, so it can be copied. */
function roffLit(s: string): string {
  return roffText(s).replace(/-/g, '\\-');
}

function manOption(o: OptionDoc): string[] {
  const flags = o.names.map((n) => `\\fB${roffLit(n)}\\fR`).join(', ');
  return ['.TP', `${flags}${o.value ? ` \\fI${roffLit(o.value)}\\fR` : ''}`, roffText(o.description)];
}

function manExample(xs: readonly Example[]): string[] {
  return xs.flatMap((x) => ['.PP', roffText(`${x.does}:`), '.PP', '.RS 4', '.nf', `\\f(CR${roffLit(x.line)}\\fR`, '.fi', '.RE']);
}

const FILES: [string, string][] = [
  [DEFAULT_POLICY, 'The policy commands read when given none (EGRESS_POLICY overrides it). "egress init" run as root writes a starter policy there, creating /etc/egress with mode 0755 and the file with mode 0644: a policy is not secret, and users may check, compile and explain it.'],
  ['/var/lib/egress/', 'The state directory (EGRESS_STATE_DIR overrides it): live.json, previous.json, confirmed.json, pending.json and applying.json (what is live, what rollback restores, what boot restores, an apply awaiting confirmation, an apply under way), history.jsonl (every apply, confirm, rollback, remove and refresh), counters.jsonl (samples of "egress stats --sample", for "egress stale"), lock, and the DNS forwarder\'s dns-forwarder.json, dns-forwarder.log and dns-forwarder.counters.json.'],
  ['/lib/systemd/system/egress-*.service, egress-*.timer', 'The units the Debian package ships: egress-restore (the confirmed policy at boot, or the lockdown), egress-dns (the DNS forwarder), egress-forward (the forward jump in DOCKER-USER), egress-refresh (refresh --watch), egress-stats.timer (Prometheus textfile) and egress-sample.timer (counter samples for stale). None is enabled at install.'],
  ['/etc/systemd/system/', '"egress persist" links the package\'s restore, dns and forward units from its *.wants/ directories; run from a checkout or an npm install, it writes its own egress-*.service there instead (EGRESS_SYSTEMD_DIR overrides the directory). "egress persist --off" removes what it made.'],
  ['/etc/logrotate.d/egress', 'Rotates /var/lib/egress/dns-forwarder.out, what the DNS forwarder prints under systemd (Debian package).'],
  ['/var/log/kern.log, /var/log/messages', 'The kernel log that stats, learn and replay read when given no LOG, --journal or --kmsg and the journal has no kernel messages (journalctl -k, tried first).'],
];

const ENVIRONMENT: [string, string][] = [
  ['EGRESS_POLICY', `The policy file commands read when given none, instead of ${DEFAULT_POLICY}; "egress init" without a file writes it.`],
  ['EGRESS_STATE_DIR', 'The state directory, instead of /var/lib/egress.'],
  ['EGRESS_SYSTEMD_DIR', 'Where "egress persist" links or writes its units, instead of /etc/systemd/system.'],
  ['EGRESS_PACKAGED_UNIT_DIR', 'Where "egress persist" looks for the package\'s units, instead of /lib/systemd/system and /usr/lib/systemd/system.'],
  ['EGRESS_SYSTEMD_RUNTIME_DIR', 'Where "egress apply" writes egress-dns.service, instead of /run/systemd/system.'],
  ['EGRESS_IFUPDOWN_DIR', 'Where "egress persist" writes its ifupdown hook, instead of /etc/network/if-pre-up.d.'],
  ['EGRESS_FORWARDER, EGRESS_WATCHDOG', 'process or systemd: force how the DNS forwarder and the confirmation watchdog run.'],
  ['EGRESS_STATS_WORKERS', 'How many threads read logs for stats (1: one).'],
  ['EGRESS_DEBUG', 'With 1, an internal error prints its stack trace too (as -v does).'],
  ['SSH_CONNECTION', 'Set by sshd: apply then refuses a ruleset that would cut this session (--force overrides).'],
];

const EXIT_STATUS: [string, string][] = [
  ['0', 'Success (check: the policy is valid, perhaps with warnings; plan: nothing would change).'],
  ['1', 'The policy is invalid, or what was asked failed (replay --check: the policy would deny something in the logs).'],
  ['2', 'Usage error: the command line itself is wrong.'],
  ['3', 'plan only: changes are pending.'],
];

export function manPage(p: ProgramDoc): string {
  const out: string[] = [
    '.\\" egress(8), generated from the command tree of egress (src/cli/share.ts): do not edit.',
    `.TH EGRESS 8 "" "egress ${roffLit(p.version)}" "System Manager's Manual"`,
    '.SH NAME',
    `egress \\- ${roffText(p.description.replace(/^One/, 'one').replace(/\.$/, ''))}`,
    '.SH SYNOPSIS',
    '.B egress',
    '[\\fIoptions\\fR] \\fIcommand\\fR [\\fIarguments\\fR]',
    '.PP',
    ...p.commands.flatMap((c, i) => [...(i ? ['.br'] : []), `\\fBegress ${roffLit(c.name)}\\fR ${roffLit(c.term.slice(c.name.length + 1))}`]),
    '.SH DESCRIPTION',
    'egress turns one declarative policy file (YAML) into a host egress firewall:',
    'what this host, and the containers and virtual machines it forwards for, may connect out to.',
    'It compiles the policy for nftables, iptables (IPv4 and IPv6 always together), Windows and Windows CE,',
    'rehearses it in throwaway network namespaces,',
    'and runs its life cycle on Linux: plan, apply (rolled back unless confirmed in time), confirm, rollback, remove, status, refresh and persist.',
    'It observes the result in the kernel log: stats, learn, replay and stale.',
    '.PP',
    `A command that reads a policy and is given none reads the file EGRESS_POLICY names, else \\fI${roffLit(DEFAULT_POLICY)}\\fR.`,
    'egress touches only what it owns: the nftables table inet egress, or the chain EGRESS of the filter tables of iptables and ip6tables.',
    '.SH OPTIONS',
    'These options are accepted before or after the command.',
    ...p.options.flatMap(manOption),
    '.SH COMMANDS',
  ];
  for (const c of p.commands) {
    out.push(`.SS ${roffLit(c.term)}`, roffText(c.description));
    if (c.args.some((a) => a.description)) {
      out.push('.PP', 'Arguments:');
      for (const a of c.args) out.push('.TP', `\\fI${roffLit(a.name)}\\fR${a.variadic ? '...' : ''}`, roffText(a.description || (a.required ? 'required' : 'optional')));
    }
    out.push('.PP', 'Options:', ...c.options.flatMap(manOption));
    if (c.examples.length) out.push('.PP', `\\fBExample${c.examples.length > 1 ? 's' : ''}\\fR`, ...manExample(c.examples));
  }
  const list = (title: string, rows: [string, string][], style: 'I' | 'B') => ['.SH ' + title, ...rows.flatMap(([k, v]) => ['.TP', `\\f${style}${roffLit(k)}\\fR`, roffText(v)])];
  out.push(...list('FILES', FILES, 'I'), ...list('ENVIRONMENT', ENVIRONMENT, 'B'), ...list('EXIT STATUS', EXIT_STATUS, 'B'));
  out.push(
    '.SH SEE ALSO',
    '.BR nft (8),',
    '.BR iptables (8),',
    '.BR ip6tables (8),',
    '.BR systemd.service (5),',
    '.BR journalctl (1)',
    '.PP',
    'The documents of egress (docs/ in its source: lifecycle, lab, observe, forward, the policy reference), installed under /usr/share/doc/egress.',
  );
  return out.join('\n') + '\n';
}

// ------------------------------------------------------------ completions

/** A word inside single quotes in a shell script. */
function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

const optionNames = (os: readonly OptionDoc[]) => os.flatMap((o) => o.names);

function bashValue(c: Completes): string {
  switch (c.kind) {
    case 'files':
      return '_egress_files';
    case 'words':
      return `_egress_words ${shq(c.words.join(' '))}`;
    case 'commands':
      return '_egress_words "$commands"';
    case 'none':
      return ':';
  }
}

/**
 * Bash: commands, each command's options, option values (choices, files) and
 * arguments (files). Works alone (no bash-completion helpers needed) and
 * beside bash-completion; `--target=nft` is understood as `--target nft`.
 */
export function bashCompletion(p: ProgramDoc): string {
  const globals = optionNames(p.options);
  const cases = p.commands.map((c) => {
    const valued = c.options.filter((o) => o.value);
    const args = c.args.find((a) => a.completes.kind !== 'none');
    return [
      `        ${c.name})`,
      ...(valued.length
        ? ['            case $prev in', ...valued.map((o) => `                ${o.names.join('|')}) ${bashValue(o.completes)}; return ;;`), '            esac']
        : []),
      `            if [[ $cur == -* ]]; then _egress_words ${shq([...optionNames(c.options), ...globals.filter((g) => !optionNames(c.options).includes(g))].join(' '))}; return; fi`,
      `            ${args ? bashValue(args.completes) : ':'}`,
      '            ;;',
    ].join('\n');
  });
  return `# bash completion for egress(8), generated from egress's command tree (src/cli/share.ts): do not edit.

_egress_words() {
    local IFS=$'\\n'
    COMPREPLY=($(IFS=' ' compgen -W "$1" -- "$cur"))
}

_egress_files() {
    compopt -o filenames 2>/dev/null
    local IFS=$'\\n'
    COMPREPLY=($(compgen -f -- "$cur"))
}

_egress() {
    local cur prev cmd i w
    local commands=${shq(p.commands.map((c) => c.name).join(' '))}
    COMPREPLY=()
    cur=\${COMP_WORDS[COMP_CWORD]}
    prev=\${COMP_WORDS[COMP_CWORD-1]}
    # --opt=value: bash splits the word at "=" (COMP_WORDBREAKS)
    if [[ $cur == = ]]; then
        cur=
    elif [[ $prev == = && COMP_CWORD -ge 2 ]]; then
        prev=\${COMP_WORDS[COMP_CWORD-2]}
    fi
    cmd=
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=\${COMP_WORDS[i]}
        case $w in
            -*) ;;
            *) cmd=$w; break ;;
        esac
    done
    case $cmd in
        '')
            if [[ $cur == -* ]]; then _egress_words ${shq(globals.join(' '))}; else _egress_words "$commands"; fi
            ;;
${cases.join('\n')}
    esac
}

complete -F _egress egress
`;
}

/** zsh: `_arguments` description text (brackets and colons are its syntax). */
function zdesc(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/([[\]:])/g, '\\$1');
}

function zshValue(c: Completes): string {
  switch (c.kind) {
    case 'files':
      return '_files';
    case 'words':
      return `(${c.words.join(' ')})`;
    case 'commands':
      return '_egress_commands';
    case 'none':
      return ' ';
  }
}

function zshOption(o: OptionDoc): string[] {
  const desc = zdesc(o.description);
  const value = o.value ? `:${zdesc(o.value)}:${zshValue(o.completes)}` : '';
  const rep = o.repeatable ? '*' : '';
  const exclusive = o.names.length > 1 ? `(${o.names.join(' ')})` : '';
  return o.names.map((n) => shq(`${rep || exclusive}${n}${o.value && n.startsWith('--') ? '=' : ''}[${desc}]${value}`));
}

export function zshCompletion(p: ProgramDoc): string {
  const commands = p.commands.map((c) => `        ${shq(`${c.name.replace(/:/g, '\\:')}:${c.description}`)}`);
  const cases = p.commands.map((c) => {
    const specs = [
      ...c.options.flatMap(zshOption),
      ...p.options.filter((g) => !c.options.some((o) => o.names.some((n) => g.names.includes(n)))).flatMap(zshOption),
      ...c.args.map((a) => shq(`${a.variadic ? '*:' : a.required ? ':' : '::'}${zdesc(a.name)}:${zshValue(a.completes)}`)),
    ];
    return [`        ${c.name})`, `            _arguments -s -S \\`, ...specs.map((s, i) => `                ${s}${i < specs.length - 1 ? ' \\' : ''}`), '            ;;'].join('\n');
  });
  return `#compdef egress
# zsh completion for egress(8), generated from egress's command tree (src/cli/share.ts): do not edit.

_egress_commands() {
    local -a commands
    commands=(
${commands.join('\n')}
    )
    _describe -t commands 'egress command' commands
}

_egress() {
    local curcontext=$curcontext state line ret=1
    typeset -A opt_args
    _arguments -C \\
${p.options.flatMap(zshOption).map((s) => `        ${s} \\`).join('\n')}
        '1: :_egress_commands' \\
        '*:: :->command' && return 0
    case $state in
        command)
            curcontext=\${curcontext%:*:*}:egress-$words[1]:
            case $words[1] in
${cases.map((c) => c.replace(/^/gm, '        ')).join('\n')}
            esac
            ;;
    esac
}

_egress "$@"
`;
}
