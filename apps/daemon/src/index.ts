export * from "./api-app.js";
export * from "./auth.js";
export * from "./jobs-api.js";
export * from "./metrics.js";
