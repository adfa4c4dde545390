export * from "./line-splitter.js";
export * from "./log-stream.js";
export * from "./find-executable.js";
export * from "./benchmark-process.js";
