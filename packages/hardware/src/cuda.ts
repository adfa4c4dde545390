import { runOnHost, type HostProbe } from "./host.js";
import { succeeded } from "./run-command.js";

/** "12.4" from `nvcc --version` ("Cuda compilation tools, release 12.4, V12.4.131"). */
export function parseNvccVersion(text: string): string {
  return /release (\d+\.\d+)/.exec(text)?.[1] ?? "";
}

/**
 * The CUDA toolkit version from nvcc. Services rarely have the toolkit on
 * PATH, so the standard install location is tried as well on the real root.
 */
export async function detectNvccVersion(host: HostProbe): Promise<{ version: string; note?: string }> {
  const candidates = host.root === "/" ? ["nvcc", "/usr/local/cuda/bin/nvcc"] : ["nvcc"];
  let note: string | undefined;
  for (const command of candidates) {
    const result = await runOnHost(host, command, ["--version"]);
    if (succeeded(result)) {
      const version = parseNvccVersion(result.stdout);
      if (version !== "") return { version };
      note = `${command}: no version in its output`;
    } else {
      note = result.message;
      if (result.failure !== "not-found") break;
    }
  }
  return note === undefined ? { version: "" } : { version: "", note };
}
