import { machine } from "node:os";

const DOCKER_ARCH: Record<string, string> = {
  x86_64: "amd64",
  amd64: "amd64",
  x64: "amd64",
  aarch64: "arm64",
  arm64: "arm64",
  armv7l: "arm",
  ppc64le: "ppc64le",
  s390x: "s390x",
  riscv64: "riscv64",
};

/** The kernel's machine name (`x86_64`, `aarch64`) in Docker's words (`amd64`, `arm64`). */
export function dockerArch(kernelMachine: string = machine()): string {
  return DOCKER_ARCH[kernelMachine] ?? kernelMachine;
}
