import type * as HttpModule from "node:http";
import type * as HttpsModule from "node:https";
import { createRequire } from "node:module";

/**
 * `node:http` and `node:https`, loaded with `require`.
 *
 * An ESM `import ... from "node:http"` builds the module's namespace from
 * every export, and reading `http.WebSocket` (a lazy getter since Node 22)
 * loads Node's bundled undici: +13.5 MiB of resident memory in a process that
 * never opens a WebSocket (measured on Node 24.21: 41.4 -> 58.1 MiB for the
 * import alone, 3.2 MiB with require). The agent runs for months, so its code
 * takes these modules from here; `import type` is free for the types.
 */
const load = createRequire(import.meta.url);

export const http = load("node:http") as typeof HttpModule;

let httpsModule: typeof HttpsModule | undefined;
/**
 * `node:https`, loaded on first use: it brings `tls` and costs 5-9 MiB of
 * resident memory, which an agent talking plain http to its server (and to
 * Docker's socket) never needs.
 */
export function loadHttps(): typeof HttpsModule {
  return (httpsModule ??= load("node:https") as typeof HttpsModule);
}
