export * from "./runtime.js";
export * from "./docker-host.js";
export { DockerRuntime, type DockerRuntimeOptions } from "./docker-runtime.js";
export { Demuxer } from "./demux.js";
export { dockerArch } from "./arch.js";
export * from "./image-choice.js";
export * from "./capabilities.js";
export * from "./build-context.js";
export * from "./build-kitt-image.js";
