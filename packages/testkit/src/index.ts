export { startFakeKittServer, FakeKittServer } from "./fake-server.js";
export type {
  Command,
  FakeAgent,
  FakeKittServerOptions,
  FakeServerTlsOptions,
  FaultOptions,
  LogLine,
  RecordedHeartbeat,
  RecordedRegistration,
  RecordedRequest,
  RecordedResult,
  RecordedStatus,
  RequestLogEntry,
  RequestMatch,
  TestRow,
} from "./fake-server-types.js";
export type { FloodResult } from "./fake-faults.js";
export { DEFAULT_SETTINGS } from "./fake-store.js";
export type { QueueTestInput } from "./fake-store.js";
export { makeTestPki, writeTestPki } from "./pki.js";
export type { PemPair, TestPki, TestPkiOptions, TestPkiPaths } from "./pki.js";
export { makeTempDir, useTempDir } from "./temp-dir.js";
export { acquireHostLock } from "./host-lock.js";
export { canMountSmallDisk, mountSmallDisk } from "./small-disk.js";
export type { SmallDisk } from "./small-disk.js";
export type { TempDir } from "./temp-dir.js";
export { writeFakeBenchmark, writeFakeModel } from "./fake-benchmark.js";
export { writeFloodBenchmark } from "./flood-benchmark.js";
export type { FloodBenchmark } from "./flood-benchmark.js";
export type { FakeBenchmarkOptions, FakeModelOptions } from "./fake-benchmark.js";
export {
  dockerAvailable,
  dockerOk,
  dockerSuite,
  removeTestContainers,
  runDocker,
  TEST_CONTAINER_LABELS,
} from "./docker-engine.js";
export type { DockerAvailability, DockerRunResult, DockerSuiteOptions, RunDockerOptions } from "./docker-engine.js";
export {
  buildKittTestImage,
  FAKE_KITT_ENV_FILE,
  hostDockerArch,
  KITT_TEST_IMAGE_SCRIPT,
  writeFakeKittBehaviour,
} from "./docker-image.js";
export type { FakeKittBehaviour, KittTestImageOptions } from "./docker-image.js";
export { KITT_BUILD_CONTEXT_DOCKERFILE, KITT_BUILD_CONTEXT_ROOT, KITT_BUILD_CONTEXT_SCRIPT, makeKittBuildContext } from "./build-context.js";
export type { KittBuildContextOptions } from "./build-context.js";
export { readFakeEngineCalls, writeFakeEngine } from "./fake-engines.js";
export type { FakeEngineCall, FakeEngineKind, FakeEngineOptions } from "./fake-engines.js";
