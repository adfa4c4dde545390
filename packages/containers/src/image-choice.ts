import { dockerArch } from "./arch.js";
import type { ContainerRuntime, ImageInfo } from "./runtime.js";

/** The image `kitt-agent build` makes and the fallback when no `kitt_image` is set or present. */
export const DEFAULT_KITT_IMAGE = "kitt:latest";

export interface KittImageChoice {
  /** The reference to run, when one fits. */
  ref: string | undefined;
  image: ImageInfo | undefined;
  /** One line per candidate passed over, saying why (missing, other architecture). */
  skipped: string[];
}

export interface ChooseImageOptions {
  /** The configured image (server setting or agent.yaml); empty means none. */
  kittImage?: string | undefined;
  /** The host's architecture in Docker's words (default: this machine's). */
  hostArch?: string;
}

/**
 * Which KITT image a benchmark would run in: `kittImage` when it is present
 * locally and built for this host's architecture, else `kitt:latest` under
 * the same conditions, else none. Never pulls: an image of the wrong
 * architecture would run under emulation or not at all.
 */
export async function chooseKittImage(runtime: ContainerRuntime, options: ChooseImageOptions = {}): Promise<KittImageChoice> {
  const hostArch = options.hostArch ?? dockerArch();
  const configured = (options.kittImage ?? "").trim();
  const candidates = [...new Set([configured, DEFAULT_KITT_IMAGE].filter((c) => c !== ""))];
  const skipped: string[] = [];
  for (const ref of candidates) {
    const image = await runtime.inspectImage(ref);
    if (image === undefined) {
      skipped.push(`image ${ref} is not present locally`);
      continue;
    }
    if (image.architecture !== "" && image.architecture !== hostArch) {
      skipped.push(`image ${ref} is built for ${image.architecture}, this host is ${hostArch}`);
      continue;
    }
    return { ref, image, skipped };
  }
  return { ref: undefined, image: undefined, skipped };
}
