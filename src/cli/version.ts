/** egress's version: `--version`, the `version` of every `--json` envelope, the report's footer. */
export const VERSION = '0.1.0';
