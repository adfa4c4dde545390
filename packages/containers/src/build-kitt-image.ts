/**
 * `kitt-agent build`: the KITT image made on this host from the build context
 * the server hands out (protocol section 5). The context is only used once
 * its SHA-256 matches the digest the server publishes, and only after every
 * archive entry has been checked.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";

import type { CallOptions, DownloadedBuildContext } from "@kitt/protocol";
import { KittError, UsageError } from "@kitt/protocol";

import { type BuildContextLimits, packContext, unpackBuildContext } from "./build-context.js";
import { DEFAULT_KITT_IMAGE } from "./image-choice.js";
import { type ContainerRuntime, ContainerRuntimeError } from "./runtime.js";

/** The part of KittServerClient a build needs. */
export interface BuildContextSource {
  readonly serverUrl: string;
  downloadBuildContext(destDir: string, opts?: CallOptions & { maxBytes?: number }): Promise<DownloadedBuildContext>;
}

export interface BuildKittImageOptions {
  client: BuildContextSource;
  runtime: ContainerRuntime;
  /** Where the temporary download and unpacked context go (a fresh folder inside, always removed). */
  workDir: string;
  /** The image's first tag (`--tag`); else kittImage; else kitt:latest. */
  tag?: string | undefined;
  /** The configured `kitt_image` (empty means unset). */
  kittImage?: string | undefined;
  noCache?: boolean;
  /** Human progress lines: the agent's own steps and the engine's build output. */
  onProgress?: (line: string) => void;
  signal?: AbortSignal;
  limits?: BuildContextLimits;
}

export interface BuiltKittImage {
  /** `sha256:...` */
  imageId: string;
  /** Every tag given, the chosen one first; kitt:latest always among them. */
  tags: string[];
  /** Docker's name: `amd64`, `arm64`. */
  architecture: string;
  /** The verified digest of the build context. */
  contextSha256: string;
}

const COMPONENT = "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
const TAG_PATTERN = new RegExp(`^(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?${COMPONENT}(?:/${COMPONENT})*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$`);

/** `kitt` -> `kitt:latest`; throws UsageError for what Docker would not take as a tag. */
export function normaliseImageTag(ref: string): string {
  const text = ref.trim();
  if (text.length > 255 || !TAG_PATTERN.test(text)) {
    throw new UsageError(`${JSON.stringify(ref)} is not a Docker image tag (lowercase repository, optional :tag, e.g. kitt:latest or registry:5000/kitt:1.7)`);
  }
  const lastSlash = text.lastIndexOf("/");
  return text.lastIndexOf(":") > lastSlash ? text : `${text}:latest`;
}

/** The tags a build gets: the chosen one first, then kitt:latest, without repeats. */
export function buildTags(tag?: string, kittImage?: string): string[] {
  const configured = kittImage?.trim() ? kittImage.trim() : undefined;
  const first = normaliseImageTag(tag ?? configured ?? DEFAULT_KITT_IMAGE);
  return [...new Set([first, DEFAULT_KITT_IMAGE])];
}

function stopIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw new KittError("build aborted", { code: "ABORTED" });
}

function megabytes(bytes: number): string {
  return `${(bytes / 1024 ** 2).toFixed(1)} MB`;
}

/**
 * Downloads the server's build context (checked against its digest by the
 * client), unpacks it safely, builds `docker/web/Dockerfile` with the
 * context root as the build context, tags it and reports its architecture.
 * The engine is asked first, so an unreachable one fails before any download.
 */
export async function buildKittImage(options: BuildKittImageOptions): Promise<BuiltKittImage> {
  const { client, runtime } = options;
  const progress = options.onProgress ?? (() => {});
  const tags = buildTags(options.tag, options.kittImage);
  await runtime.info();
  const work = await mkdtemp(join(options.workDir, "kitt-build-"));
  try {
    progress(`Downloading the build context from ${client.serverUrl}`);
    const download = await client.downloadBuildContext(join(work, "download"), {
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
      ...(options.limits?.maxBytes !== undefined ? { maxBytes: options.limits.maxBytes } : {}),
      timeoutMs: 600_000,
    });
    progress(`Build context verified: ${megabytes(download.bytes)}, sha256 ${download.sha256}`);
    stopIfAborted(options.signal);
    const context = await unpackBuildContext(download.path, join(work, "context"), options.limits);
    await rm(download.path, { force: true });
    stopIfAborted(options.signal);
    progress(`Unpacked ${context.entries} entries (${megabytes(context.bytes)}); building ${context.dockerfile} as ${tags.join(", ")}`);
    const imageId = await runtime.buildImage(packContext(context.contextDir), {
      tags,
      dockerfile: context.dockerfile,
      ...(options.noCache === true ? { noCache: true } : {}),
      onProgress: progress,
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
    });
    const image = await runtime.inspectImage(imageId);
    if (image === undefined) throw new ContainerRuntimeError(`inspect image ${imageId}`, "the image just built is gone");
    return { imageId, tags, architecture: image.architecture, contextSha256: download.sha256 };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
