/** The backends `compile --target` knows. Each backend folder is named after its target. */
import type { Backend, Target } from './types.js';
import { iptablesBackend } from './iptables/emit.js';
import { nftBackend } from './nft/emit.js';
import { windowsBackend } from './windows/emit.js';
import { winceBackend } from './wince/emit.js';
import { winceCBackend } from './wince/emit-c.js';

export const BACKENDS: Record<Target, Backend> = {
  nft: nftBackend,
  iptables: iptablesBackend,
  windows: windowsBackend,
  wince: winceBackend,
  'wince-c': winceCBackend,
};

// index.ts exports these from here; main.ts takes them from types.ts, so that `--help` loads no backend.
export { TARGETS, type CompileTarget } from './types.js';
