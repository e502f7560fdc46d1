/** Process entry: wire the real process into `main` and exit with its code. */
import { main } from './main.js';
import { processIo } from './io.js';

main(process.argv.slice(2), processIo()).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`egress: internal error: ${(e as Error)?.message ?? String(e)} (please report this)\n`);
    process.exitCode = 1;
  },
);
