/**
 * Process entry: wire the real process into `main` and exit with its code.
 *
 * `egress _dns-forwarder SPEC` (the DNS forwarder the life cycle starts,
 * kernel/forwarder.ts) loads only src/dns, not the whole CLI: every command
 * module would add about 10 MiB of RSS to a process that runs as long as the
 * host (measured at 10,000 names and 52,000 live elements: 85 against 75
 * MiB). It is the same code and the same message on failure as the
 * `_dns-forwarder` command in main.ts.
 */
import { EXIT, processIo } from './io.js';

const argv = process.argv.slice(2);
const internalError = (e: unknown) => {
  process.stderr.write(`egress: internal error: ${(e as Error)?.message ?? String(e)} (please report this)\n`);
  process.exitCode = 1;
};

if (argv.length === 2 && argv[0] === '_dns-forwarder' && !argv[1]!.startsWith('-')) {
  import('../dns/main.js').then(
    ({ forwarderProcess }) =>
      forwarderProcess(argv[1]!).catch((e: unknown) => {
        process.stderr.write(`egress: error: DNS forwarder: ${(e as Error)?.message ?? String(e)}\n`);
        process.exitCode = EXIT.failed;
      }),
    internalError,
  );
} else {
  import('./main.js').then(
    ({ main }) =>
      main(argv, processIo()).then((code) => {
        process.exitCode = code;
      }, internalError),
    internalError,
  );
}
