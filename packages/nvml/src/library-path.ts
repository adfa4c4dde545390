import { isAbsolute, resolve } from "node:path";

import type { NvmlOptions } from "./types.js";

/** The soname the driver installs; dlopen searches the usual library paths for it. */
export const DEFAULT_NVML_LIBRARY = "libnvidia-ml.so.1";

/**
 * Which library to load: the explicit option, else `KITT_NVML_PATH`, else the
 * system's libnvidia-ml.so.1. A relative path with a slash is made absolute so
 * it names one file whatever the working directory later becomes.
 */
export function resolveLibraryPath(options: NvmlOptions = {}): string {
  const env = options.env ?? process.env;
  const chosen = nonEmpty(options.libraryPath) ?? nonEmpty(env.KITT_NVML_PATH) ?? DEFAULT_NVML_LIBRARY;
  if (chosen.includes("/") && !isAbsolute(chosen)) return resolve(chosen);
  return chosen;
}

function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed ? trimmed : undefined;
}
