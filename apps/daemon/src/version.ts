import { createRequire } from "node:module";

/** The daemon's own package version, reported as `kitt_version`. */
export const AGENT_VERSION: string = (createRequire(import.meta.url)("../package.json") as { version: string }).version;

/**
 * What the agent registers as `kitt_version`: the KITT server stores any
 * string there and shows it on the agent's page (it parses nothing), so it
 * names this implementation too, telling it apart from the original Python
 * agent's bare version (e.g. `0.4.2`) on a mixed fleet.
 */
export const REPORTED_VERSION = `kitt-agent-ts/${AGENT_VERSION}`;
