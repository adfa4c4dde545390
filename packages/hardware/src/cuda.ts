import { runOnHost, type HostProbe } from "./host.js";
import { succeeded } from "./run-command.js";

/** "12.4" from `nvcc --version` ("Cuda compilation tools, release 12.4, V12.4.131"). */
export function parseNvccVersion(text: string): string {
  return /release (\d+\.\d+)/.exec(text)?.[1] ?? "";
}

/**
 * The CUDA toolkit version from the `nvcc` on PATH, as the original agent
 * asks it (`cuda_version` is part of the fingerprint, so no other place is
 * tried: a service without the toolkit on PATH reports "" like the original).
 */
export async function detectNvccVersion(host: HostProbe): Promise<{ version: string; note?: string }> {
  const result = await runOnHost(host, "nvcc", ["--version"]);
  if (!succeeded(result)) return { version: "", note: result.message };
  const version = parseNvccVersion(result.stdout);
  return version === "" ? { version, note: "nvcc: no version in its output" } : { version };
}
