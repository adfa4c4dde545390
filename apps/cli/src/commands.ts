import Init from "./commands/init.js";

/**
 * The explicit command list (oclif's "explicit" strategy): no directory scan
 * at start-up. Command modules import only @oclif/core and load their work
 * lazily inside run(), so importing all of them here stays cheap.
 */
export const COMMANDS = {
  init: Init,
};
