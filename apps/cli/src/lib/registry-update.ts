import { createHash, randomBytes } from "node:crypto";
import { createWriteStream, existsSync } from "node:fs";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";

import { IntegrityError, KittError, UsageError } from "@kitt/protocol";

import { installLayout, linkTarget } from "./install-layout.js";
import { outputLine, runCommand as defaultRunner, type CommandRunner } from "./run-command.js";
import { installUnpacked, PACKAGE_NAME, type UpdateResult } from "./update.js";

export const DEFAULT_REGISTRY = "https://registry.npmjs.org/";
const METADATA_TIMEOUT_MS = 30_000;
const DOWNLOAD_TIMEOUT_MS = 300_000;
const NPM_INSTALL_TIMEOUT_MS = 600_000;
const MAX_METADATA_BYTES = 32 * 1024 * 1024;
const MAX_TARBALL_BYTES = 512 * 1024 * 1024;
const VERSION_RE = /^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/;

export interface RegistryUpdateOptions {
  home: string;
  /** Registry base URL (default: npm_config_registry, else the public npm registry). */
  registry?: string;
  /** An exact version; default the registry's `latest` dist-tag. */
  version?: string;
  run?: CommandRunner;
  env?: NodeJS.ProcessEnv;
}

export interface RegistryUpdateResult extends UpdateResult {
  registry: string;
  integrity: string;
}

/** The registry URL to use: the flag, else npm's environment setting, else the public registry; checked. */
export function registryUrl(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const raw = flag ?? env.npm_config_registry ?? env.NPM_CONFIG_REGISTRY ?? DEFAULT_REGISTRY;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`--registry must be an http(s) URL, got ${JSON.stringify(raw)}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new UsageError(`--registry must be an http(s) URL, got ${JSON.stringify(raw)}`);
  if (url.username !== "" || url.password !== "") throw new UsageError("--registry must not carry credentials in the URL");
  return url.href.endsWith("/") ? url.href : `${url.href}/`;
}

interface VersionMeta {
  version: string;
  tarball: string;
  sha512: Buffer;
  integrity: string;
}

/** The sha512 digest of an SRI string (`sha512-<base64>`, possibly among others); undefined when there is none. */
export function sha512Of(integrity: unknown): Buffer | undefined {
  if (typeof integrity !== "string") return undefined;
  for (const part of integrity.trim().split(/\s+/)) {
    const m = /^sha512-([A-Za-z0-9+/]+={0,2})(\?.*)?$/.exec(part);
    if (m?.[1] === undefined) continue;
    const digest = Buffer.from(m[1], "base64");
    if (digest.length === 64) return digest;
  }
  return undefined;
}

async function fetchBounded(url: string, timeoutMs: number, accept: string): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(url, { headers: { accept }, signal: AbortSignal.timeout(timeoutMs), redirect: "follow" });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const why = (err as Error).name === "TimeoutError" ? `no answer within ${Math.round(timeoutMs / 1000)} s` : (cause?.code ?? cause?.message ?? (err as Error).message);
    throw new KittError(`GET ${url} failed: ${why}`, { code: "REGISTRY", cause: err });
  }
  return res;
}

/** Reads the registry's document for @kitt/cli and picks the version (exact, or `latest`). */
async function resolveVersion(registry: string, wanted: string | undefined): Promise<VersionMeta> {
  if (wanted !== undefined && !VERSION_RE.test(wanted)) throw new UsageError(`VERSION must be an exact version such as 0.2.0, got ${JSON.stringify(wanted)}`);
  const url = new URL(PACKAGE_NAME.replace("/", "%2f"), registry).href;
  const res = await fetchBounded(url, METADATA_TIMEOUT_MS, "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8");
  if (res.status === 404) throw new KittError(`${registry} has no ${PACKAGE_NAME} (GET ${url}: HTTP 404)`, { code: "REGISTRY" });
  if (!res.ok) throw new KittError(`GET ${url} failed with HTTP ${res.status}`, { code: "REGISTRY" });
  const length = Number(res.headers.get("content-length") ?? "0");
  if (length > MAX_METADATA_BYTES) throw new KittError(`GET ${url}: the package document is ${length} bytes, more than the ${MAX_METADATA_BYTES} accepted`, { code: "REGISTRY" });
  let doc: unknown;
  try {
    doc = JSON.parse(await res.text());
  } catch {
    throw new KittError(`GET ${url}: the registry's answer is not JSON`, { code: "REGISTRY" });
  }
  const versions = (doc as { versions?: unknown }).versions;
  const tags = (doc as { "dist-tags"?: unknown })["dist-tags"];
  if (typeof versions !== "object" || versions === null) throw new KittError(`GET ${url}: the registry's answer lists no versions`, { code: "REGISTRY" });
  const latest = typeof tags === "object" && tags !== null ? (tags as Record<string, unknown>).latest : undefined;
  const version = wanted ?? (typeof latest === "string" ? latest : undefined);
  if (version === undefined) throw new KittError(`${registry} names no latest version of ${PACKAGE_NAME}: give one (kitt-agent update --from-registry VERSION)`, { code: "REGISTRY" });
  const meta = (versions as Record<string, unknown>)[version];
  if (typeof meta !== "object" || meta === null) {
    throw new KittError(`${registry} has no ${PACKAGE_NAME}@${version}${typeof latest === "string" ? ` (latest is ${latest})` : ""}`, { code: "REGISTRY" });
  }
  const dist = (meta as { dist?: { tarball?: unknown; integrity?: unknown } }).dist;
  const tarball = dist?.tarball;
  if (typeof tarball !== "string" || !/^https?:\/\//.test(tarball)) {
    throw new KittError(`${PACKAGE_NAME}@${version} on ${registry} has no http(s) tarball address`, { code: "REGISTRY" });
  }
  const sha512 = sha512Of(dist?.integrity);
  if (sha512 === undefined) {
    throw new IntegrityError(`${PACKAGE_NAME}@${version} on ${registry} has no sha512 integrity: refusing an unverified package; nothing changed`);
  }
  return { version, tarball, sha512, integrity: `sha512-${sha512.toString("base64")}` };
}

/** Downloads the tarball into `dir`, hashing as it goes; the file is kept only when it matches. */
async function download(meta: VersionMeta, dir: string): Promise<{ path: string; bytes: number }> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, `.${randomBytes(6).toString("hex")}.tgz`);
  const res = await fetchBounded(meta.tarball, DOWNLOAD_TIMEOUT_MS, "application/octet-stream");
  if (!res.ok || res.body === null) throw new KittError(`GET ${meta.tarball} failed with HTTP ${res.status}`, { code: "REGISTRY" });
  const hash = createHash("sha512");
  let bytes = 0;
  try {
    await pipeline(
      Readable.fromWeb(res.body),
      async function* (source: AsyncIterable<Buffer>) {
        for await (const chunk of source) {
          bytes += chunk.length;
          if (bytes > MAX_TARBALL_BYTES) throw new KittError(`${meta.tarball} is larger than ${MAX_TARBALL_BYTES} bytes: refused`, { code: "REGISTRY" });
          hash.update(chunk);
          yield chunk;
        }
      },
      createWriteStream(path, { mode: 0o600 }),
    );
    const got = hash.digest();
    if (!got.equals(meta.sha512)) {
      throw new IntegrityError(
        `${PACKAGE_NAME}@${meta.version}: the tarball's sha512-${got.toString("base64")} does not match the registry's ${meta.integrity}; nothing changed`,
      );
    }
    return { path, bytes };
  } catch (err) {
    await rm(path, { force: true });
    if (err instanceof KittError) throw err;
    throw new KittError(`downloading ${meta.tarball} failed: ${(err as Error).message}`, { code: "REGISTRY", cause: err });
  }
}

/**
 * Installs the production dependencies of an unpacked @kitt/cli with npm
 * (which checks every dependency against the registry's integrity). The
 * package's own scripts and devDependencies are dropped first: they are
 * for developing it, not for running it.
 */
async function installDependencies(dir: string, version: string, registry: string, run: CommandRunner, env: NodeJS.ProcessEnv): Promise<void> {
  const manifestPath = join(dir, "package.json");
  const manifest = JSON.parse(await readFile(manifestPath, "utf8")) as Record<string, unknown>;
  const deps = manifest.dependencies;
  if (typeof deps !== "object" || deps === null || Object.keys(deps).length === 0) return;
  const local = Object.entries(deps as Record<string, unknown>).find(([, spec]) => typeof spec !== "string" || /^(workspace|file|link):/.test(spec));
  if (local !== undefined) {
    throw new KittError(`${PACKAGE_NAME}@${version} names ${local[0]}@${String(local[1])}, which no registry can provide (published without pnpm?): nothing changed`, {
      code: "BAD_PACKAGE",
    });
  }
  delete manifest.devDependencies;
  delete manifest.scripts;
  await writeFile(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);
  const args = ["install", "--omit=dev", "--no-package-lock", "--no-audit", "--no-fund", "--no-update-notifier", `--registry=${registry}`];
  let result;
  try {
    result = await run("npm", args, { timeoutMs: NPM_INSTALL_TIMEOUT_MS, cwd: dir, env });
  } catch (err) {
    throw new KittError(`installing the dependencies of ${PACKAGE_NAME}@${version} needs npm: ${(err as Error).message}; nothing changed`, { code: "NPM", cause: err });
  }
  if (result.code !== 0) {
    const line = outputLine(result).replace(/^npm (error|ERR!)\s*/, "");
    throw new KittError(`npm install of ${PACKAGE_NAME}@${version}'s dependencies failed (exit ${result.code}): ${line}; nothing changed`, { code: "NPM" });
  }
}

/**
 * Installs a published @kitt/cli from an npm registry into the same layout
 * as a server update (versions/<version>-<sha12>, `current`, `previous`):
 * the tarball is checked against the registry's sha512 integrity before it
 * is unpacked, its dependencies are installed with npm, and `current` is
 * switched in one rename only when all of that worked.
 */
export async function updateFromRegistry(options: RegistryUpdateOptions): Promise<RegistryUpdateResult> {
  const env = options.env ?? process.env;
  const registry = registryUrl(options.registry, env);
  const run = options.run ?? defaultRunner;
  const layout = installLayout(options.home);
  await mkdir(layout.versions, { recursive: true });
  const meta = await resolveVersion(registry, options.version);
  const shaHex = meta.sha512.toString("hex");
  // The same integrity is the same tarball: nothing to download when it is current already.
  const name = `${meta.version}-${shaHex.slice(0, 12)}`;
  if ((await linkTarget(layout.current)) === name && existsSync(join(layout.versions, name))) {
    return {
      version: meta.version,
      sha256: shaHex,
      bytes: 0,
      current: name,
      previous: await linkTarget(layout.previous),
      switched: false,
      entry: join(layout.current, "bin", "run.js"),
      registry,
      integrity: meta.integrity,
    };
  }
  const file = await download(meta, layout.downloads);
  try {
    const r = await installUnpacked(layout, run, file.path, `${PACKAGE_NAME}@${meta.version}`, { sha: shaHex, bytes: file.bytes }, {
      expectVersion: meta.version,
      prepare: (dir, version) => installDependencies(dir, version, registry, run, env),
    });
    return { ...r, registry, integrity: meta.integrity };
  } finally {
    await rm(file.path, { force: true });
  }
}
