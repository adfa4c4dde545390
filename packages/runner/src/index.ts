export * from "./line-splitter.js";
export * from "./log-stream.js";
export * from "./find-executable.js";
export * from "./benchmark-process.js";
export * from "./command-validation.js";
export * from "./job-types.js";
export { Job } from "./job.js";
export { benchmarkArgs, type RunContext } from "./run-test.js";
export * from "./job-runner.js";
