/**
 * The heartbeat's `capabilities`: which inference engines this host can run
 * in Docker because their image is already present locally. The rule is the
 * original agent's (protocol section 5): an image whose `repo:tag` starts
 * with one of an engine's prefixes. It is a plain prefix test, as in the
 * original, so `vllm/vllm-openai-rocm:latest` counts for vllm too.
 */
import type { ContainerRuntime } from "./runtime.js";

/** Image name prefixes per engine, as the KITT server knows the engines. */
export const ENGINE_IMAGE_PREFIXES: Readonly<Record<string, readonly string[]>> = Object.freeze({
  llama_cpp: Object.freeze(["ghcr.io/ggml-org/llama.cpp", "ghcr.io/ggerganov/llama.cpp", "kitt/llama-cpp"]),
  ollama: Object.freeze(["ollama/ollama"]),
  vllm: Object.freeze(["vllm/vllm-openai", "nvcr.io/nvidia/vllm"]),
});

/** Docker Hub's spellings of its own registry, longest first. */
const DOCKER_HUB_PREFIXES = ["index.docker.io/library/", "docker.io/library/", "index.docker.io/", "docker.io/"];

/**
 * A tag as Docker reports it locally: Docker drops the `docker.io/` (and
 * `docker.io/library/`) prefix of Hub images, but a tag made by hand or by
 * another tool may carry it, so it is removed here. Other registries stay.
 */
export function normalizeImageTag(tag: string): string {
  const trimmed = tag.trim();
  const lower = trimmed.toLowerCase();
  for (const prefix of DOCKER_HUB_PREFIXES) {
    if (lower.startsWith(prefix)) return trimmed.slice(prefix.length);
  }
  return trimmed;
}

/**
 * Engine names (sorted, unique) for which one of `tags` (`repo:tag` strings,
 * e.g. every RepoTags entry of the local images) is that engine's image.
 * Entries that are not non-empty strings are ignored; `<none>:<none>` never
 * matches anything.
 */
export function capabilitiesFromImages(tags: readonly unknown[]): string[] {
  if (!Array.isArray(tags)) throw new TypeError("capabilitiesFromImages: tags must be an array of strings");
  const names = tags.filter((t): t is string => typeof t === "string").map(normalizeImageTag).filter((t) => t !== "");
  const found = new Set<string>();
  for (const [engine, prefixes] of Object.entries(ENGINE_IMAGE_PREFIXES)) {
    if (names.some((name) => prefixes.some((prefix) => name.startsWith(prefix)))) found.add(engine);
  }
  return [...found].sort();
}

export interface CapabilityDetection {
  /** Engine names, sorted; [] when Docker could not be asked. */
  capabilities: string[];
  /** Why the images could not be listed (Docker unavailable, engine error); absent on success. */
  error?: string;
}

/**
 * Lists the local images and derives the capabilities. Never throws: a host
 * without a working Docker simply has no Docker capabilities, and `error`
 * says why so that the caller can log it (once, not every heartbeat).
 */
export async function detectCapabilities(runtime: ContainerRuntime): Promise<CapabilityDetection> {
  try {
    const images = await runtime.listImages();
    return { capabilities: capabilitiesFromImages(images.flatMap((image) => image.repoTags)) };
  } catch (error) {
    return { capabilities: [], error: error instanceof Error ? error.message : String(error) };
  }
}
