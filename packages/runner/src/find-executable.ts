// The PATH lookup is shared with @kitt/hardware's preflight: one implementation, in @kitt/protocol.
export { findExecutable } from "@kitt/protocol";
