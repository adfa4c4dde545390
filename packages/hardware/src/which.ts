// `command -v`: the PATH lookup shared with @kitt/runner lives in @kitt/protocol.
export { findExecutable as findOnPath } from "@kitt/protocol";
