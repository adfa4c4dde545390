import { createRequire } from "node:module";

/** The daemon's own package version, reported as `kitt_version`. */
export const AGENT_VERSION: string = (createRequire(import.meta.url)("../package.json") as { version: string }).version;
