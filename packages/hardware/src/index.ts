export { detectSystem, registrationFields, vramGb, gpuInfoString } from "./detect-system.js";
export type { DetectOptions, HardwareDetails, RegistrationHardware, SystemInfo } from "./detect-system.js";
export { buildFingerprint } from "./fingerprint.js";
export type { FingerprintInput } from "./fingerprint.js";
export { detectEnvironmentType } from "./environment.js";
export type { EnvironmentType } from "./environment.js";
export { detectCpu, dockerArch, parseCpuinfo } from "./cpu.js";
export type { CpuInfo } from "./cpu.js";
export { detectRamBytes, detectRamType, parseDmidecodeMemory, parseLshwMemory, ramGb } from "./memory.js";
export { detectStorage, parseLsblkPairs, rootDevice } from "./storage.js";
export type { StorageInfo } from "./storage.js";
export { identifyDrive } from "./storage-brand.js";
export type { StorageIdentity } from "./storage-brand.js";
export { detectGpus } from "./gpu-detect.js";
export type { DetectedGpu, GpuDetection, GpuSource, NvmlAccess } from "./gpu-detect.js";
export { parseNvccVersion } from "./cuda.js";
export { parseSmiCsv } from "./nvidia-smi.js";
export { GpuSampler, gpuSnapshot } from "./gpu-snapshot.js";
export type { GpuSamplerOptions, GpuSnapshot, GpuTelemetry } from "./gpu-snapshot.js";
export { createHostProbe, currentHostOs, DEFAULT_COMMAND_TIMEOUT_MS } from "./host.js";
export type { HostOs, HostProbe } from "./host.js";
export { runCommand, succeeded } from "./run-command.js";
export type { CommandFailure, CommandResult, CommandRunner, RunOptions } from "./run-command.js";
export { findOnPath } from "./which.js";
export { runPreflight, DEFAULT_AGENT_PORT, DEFAULT_DOCKER_GPU_IMAGE, DEFAULT_PREFLIGHT_TIMEOUTS_MS } from "./preflight.js";
export { MIN_NODE_VERSION } from "./preflight-checks.js";
export { formatPreflightJson, formatPreflightTable } from "./preflight-format.js";
export { PREFLIGHT_CHECK_IDS } from "./preflight-types.js";
export type {
  CheckStatus,
  PreflightCheck,
  PreflightCheckId,
  PreflightOptions,
  PreflightResult,
  PreflightTls,
} from "./preflight-types.js";
