export * from "./api-app.js";
export * from "./auth.js";
export * from "./jobs-api.js";
export * from "./metrics.js";
export * from "./agent.js";
export * from "./agent-metrics.js";
export * from "./logging.js";
export * from "./pid-file.js";
export { AGENT_VERSION } from "./version.js";
