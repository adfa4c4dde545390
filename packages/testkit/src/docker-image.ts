/**
 * A tiny KITT image for Docker tests, built on this machine with no registry:
 * the host's static busybox, its applets as symlinks, and a fake
 * `/usr/local/bin/kitt` whose behaviour each run reads from the model dir.
 *
 * Why `docker load` of a hand-made image tarball rather than `docker import
 * --platform`: Docker 20.10 (API 1.41) accepts `import --platform` but records
 * the engine's own architecture, so no arm64 image could be had that way. A
 * `docker save`-format tarball carries its own config, architecture included,
 * and loads the same on every engine. Its bytes are deterministic (fixed
 * mtimes, owners, order), so the image id is known before loading and
 * concurrent builders of the same image simply load the same thing.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { chmod, copyFile, mkdir, open, readFile, rename, stat, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { dockerOk, runDocker } from "./docker-engine.js";
import { makeTempDir } from "./temp-dir.js";

const execFileAsync = promisify(execFile);

/** The file in the model dir that the image's fake kitt reads at run time. */
export const FAKE_KITT_ENV_FILE = "fake-kitt.env";

const DEFAULT_METRICS = '{"throughput_tokens_per_s":1234.5,"ttft_ms_p50":42}';

/** The image's /usr/local/bin/kitt (busybox sh). */
export const KITT_TEST_IMAGE_SCRIPT = `#!/bin/sh
# Fake KITT benchmark CLI of the KITT test image (@kitt/testkit), not the real
# benchmark. Behaviour comes from <model>/${FAKE_KITT_ENV_FILE} at run time.
usage() {
  echo "usage: kitt run -m MODEL -e ENGINE -s SUITE -o OUT [--auto-pull] [--mode MODE]" >&2
  [ -n "$1" ] && echo "kitt: $1" >&2
  exit 2
}
[ "$1" = "run" ] || usage "unknown command: \${1:-(none)}"
shift
model= engine= suite= out= mode=
while [ $# -gt 0 ]; do
  case "$1" in
    -m|-e|-s|-o|--mode)
      [ $# -ge 2 ] || usage "$1 needs a value"
      case "$1" in
        -m) model=$2 ;; -e) engine=$2 ;; -s) suite=$2 ;; -o) out=$2 ;; --mode) mode=$2 ;;
      esac
      shift 2 ;;
    --auto-pull) shift ;;
    *) usage "unknown argument: $1" ;;
  esac
done
[ -n "$model" ] && [ -n "$engine" ] && [ -n "$suite" ] && [ -n "$out" ] || usage "-m, -e, -s and -o are required"

LINES=5 STDERR_LINE= SLEEP= EXIT=0 IGNORE_TERM= GRANDCHILD=
METRICS='${DEFAULT_METRICS}'
[ -f "$model/${FAKE_KITT_ENV_FILE}" ] && . "$model/${FAKE_KITT_ENV_FILE}"

# As PID 1 of a container, a signal without a handler is dropped: TERM gets
# an explicit one, or is ignored on purpose.
child=
if [ "$IGNORE_TERM" = 1 ]; then
  trap '' TERM
else
  trap '[ -n "$child" ] && kill $child 2>/dev/null; echo "terminated (exit 143)"; exit 143' TERM
  trap '[ -n "$child" ] && kill $child 2>/dev/null; echo "interrupted (exit 130)"; exit 130' INT
fi

echo "kitt (fake, container) run: model=$model engine=$engine suite=$suite mode=$mode"
if [ "$GRANDCHILD" = 1 ]; then
  sleep 300 &
  echo "grandchild $!"
fi
# One sed over seq: 100,000 lines in well under a second.
[ "$LINES" -gt 0 ] && seq 1 "$LINES" | sed "s|.*|[&/$LINES] benchmark step &|"
[ "$STDERR_LINE" = 1 ] && echo "a warning on stderr" >&2
if [ -n "$SLEEP" ]; then
  # In the background, so that a TERM is handled at once, not after the sleep.
  sleep "$SLEEP" &
  child=$!
  wait $child
  child=
fi
if [ "$EXIT" = 0 ] && [ "$METRICS" != none ]; then
  mkdir -p "$out" && printf '%s' "$METRICS" > "$out/metrics.json"
fi
echo "done (exit $EXIT)"
exit "$EXIT"
`;

/** Bump when the image layout (not the script) changes, so old cached images are not reused. */
const LAYOUT_VERSION = "1";
const HASH_LABEL = "kitt.test.image";

export interface KittTestImageOptions {
  /** Image ref (default `kitt-test:<arch>-<hash of the script, busybox and layout>`). */
  tag?: string;
  /** Architecture the image metadata declares (default the host's). */
  arch?: "amd64" | "arm64" | (string & {});
  /** A static busybox to copy (default /bin/busybox or /usr/bin/busybox). */
  busybox?: string;
  /**
   * The image's entrypoint (default the fake `kitt`); `null` for none, an
   * image that runs its command as given (a service for run_container).
   */
  entrypoint?: string[] | null;
  env?: NodeJS.ProcessEnv;
}

/** The Docker name of this machine's architecture. */
export function hostDockerArch(): string {
  const names: Record<string, string> = { x64: "amd64", arm64: "arm64", arm: "arm", ia32: "386", ppc64: "ppc64le" };
  return names[process.arch] ?? process.arch;
}

function sha256(data: string | Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

/**
 * Builds (or reuses) the KITT test image and returns its ref. An image
 * already under the tag is reused when it was built from the same script,
 * busybox and layout for the same architecture.
 */
export async function buildKittTestImage(options: KittTestImageOptions = {}): Promise<string> {
  const env = options.env ?? process.env;
  const arch = options.arch ?? hostDockerArch();
  // First, so that a machine without one hears how to get one even when the image is cached.
  const busybox = await findStaticBusybox(options.busybox);
  // Whatever goes into the image goes into the hash: a changed script or busybox makes a new image.
  const entrypoint = options.entrypoint === undefined ? ["/usr/local/bin/kitt"] : options.entrypoint;
  const hash = sha256(
    `${LAYOUT_VERSION}\n${KITT_TEST_IMAGE_SCRIPT}\n${sha256(await readFile(busybox))}\n${JSON.stringify(entrypoint)}`,
  ).slice(0, 12);
  const tag = options.tag ?? `kitt-test:${arch}-${hash}`;
  const existing = await inspectImage(tag, env);
  if (existing !== null && existing.Architecture === arch && existing.Config?.Labels?.[HASH_LABEL] === hash) return tag;

  const work = await makeTempDir("kitt-test-image-");
  try {
    const imageId = await writeImageTarball(work.path, { busybox, arch, hash, entrypoint });
    await dockerOk(["load", "-q", "-i", join(work.path, "image.tar")], { env, timeoutMs: 120_000 });
    // Tagging is atomic, so builders racing on the same tag all end well.
    await dockerOk(["tag", `sha256:${imageId}`, tag], { env, timeoutMs: 30_000 });
  } finally {
    await work.cleanup();
  }
  const built = await inspectImage(tag, env);
  if (built?.Architecture !== arch) {
    throw new Error(`${tag}: docker image inspect says architecture ${built?.Architecture ?? "(no image)"}, wanted ${arch}`);
  }
  return tag;
}

interface ImageInspect {
  Id: string;
  Architecture: string;
  Config?: { Labels?: Record<string, string> | null };
}

async function inspectImage(ref: string, env: NodeJS.ProcessEnv): Promise<ImageInspect | null> {
  const result = await runDocker(["image", "inspect", ref], { env, timeoutMs: 30_000 });
  if (result.code !== 0) {
    if (/no such image/i.test(result.stderr)) return null;
    throw new Error(`docker image inspect ${ref} exited with ${result.code}: ${result.stderr.trim()}`);
  }
  const [image] = JSON.parse(result.stdout) as ImageInspect[];
  return image ?? null;
}

/** Writes `<dir>/image.tar` in `docker save` format and returns the image id (hex). */
async function writeImageTarball(
  dir: string,
  { busybox, arch, hash, entrypoint }: { busybox: string; arch: string; hash: string; entrypoint: string[] | null },
): Promise<string> {
  const rootfs = join(dir, "rootfs");
  for (const sub of ["bin", "usr/local/bin", "tmp", "var/run"]) await mkdir(join(rootfs, sub), { recursive: true });
  for (const sub of ["", "bin", "usr", "usr/local", "usr/local/bin", "var", "var/run"]) await chmod(join(rootfs, sub), 0o755);
  await chmod(join(rootfs, "tmp"), 0o1777);
  await copyFile(busybox, join(rootfs, "bin/busybox"));
  await chmod(join(rootfs, "bin/busybox"), 0o755);
  const { stdout } = await execFileAsync(busybox, ["--list"], { timeout: 10_000 });
  const applets = stdout.split("\n").filter((name) => name !== "" && name !== "busybox" && !name.includes("/"));
  for (const applet of applets) await symlink("busybox", join(rootfs, "bin", applet));
  await writeFile(join(rootfs, "usr/local/bin/kitt"), KITT_TEST_IMAGE_SCRIPT);
  await chmod(join(rootfs, "usr/local/bin/kitt"), 0o755);

  const image = join(dir, "image");
  await mkdir(image);
  const layerTmp = join(dir, "layer.tar");
  await execFileAsync(
    "tar",
    ["--sort=name", "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner", "-C", rootfs, "-cf", layerTmp, "."],
    { timeout: 60_000 },
  );
  const diffId = sha256(await readFile(layerTmp));
  await mkdir(join(image, diffId));
  await rename(layerTmp, join(image, diffId, "layer.tar"));

  const created = "2025-01-01T00:00:00Z"; // fixed, so that the image id is too
  const config = JSON.stringify({
    architecture: arch,
    os: "linux",
    created,
    config: {
      Entrypoint: entrypoint,
      Env: ["PATH=/usr/local/bin:/bin"],
      WorkingDir: "/",
      Labels: { [HASH_LABEL]: hash },
    },
    rootfs: { type: "layers", diff_ids: [`sha256:${diffId}`] },
    history: [{ created, created_by: "@kitt/testkit buildKittTestImage" }],
  });
  const imageId = sha256(config);
  await writeFile(join(image, `${imageId}.json`), config);
  await writeFile(
    join(image, "manifest.json"),
    JSON.stringify([{ Config: `${imageId}.json`, RepoTags: null, Layers: [`${diffId}/layer.tar`] }]),
  );
  await execFileAsync("tar", ["-C", image, "-cf", join(dir, "image.tar"), "."], { timeout: 60_000 });
  return imageId;
}

/** The first static busybox among the candidates, or an error saying how to get one. */
async function findStaticBusybox(path?: string): Promise<string> {
  const candidates = path !== undefined ? [path] : ["/bin/busybox", "/usr/bin/busybox"];
  const found: string[] = [];
  for (const candidate of candidates) {
    const exists = await stat(candidate).then(
      (s) => s.isFile(),
      () => false,
    );
    if (!exists) continue;
    if (await isStaticElf(candidate)) return candidate;
    found.push(`${candidate} is not a statically linked ELF binary`);
  }
  const detail = found.length > 0 ? found.join("; ") : `none at ${candidates.join(" or ")}`;
  throw new Error(`the KITT test image needs a static busybox (${detail}): apt-get install busybox-static`);
}

/** An ELF executable without a PT_INTERP program header needs no dynamic loader. */
async function isStaticElf(path: string): Promise<boolean> {
  const file = await open(path, "r");
  try {
    const header = Buffer.alloc(64);
    await file.read(header, 0, 64, 0);
    if (header.readUInt32BE(0) !== 0x7f454c46) return false;
    const is64 = header[4] === 2;
    const le = header[5] === 1;
    const u16 = (buf: Buffer, at: number): number => (le ? buf.readUInt16LE(at) : buf.readUInt16BE(at));
    const u32 = (buf: Buffer, at: number): number => (le ? buf.readUInt32LE(at) : buf.readUInt32BE(at));
    const phoff = is64 ? Number(le ? header.readBigUInt64LE(0x20) : header.readBigUInt64BE(0x20)) : u32(header, 0x1c);
    const phentsize = u16(header, is64 ? 0x36 : 0x2a);
    const phnum = u16(header, is64 ? 0x38 : 0x2c);
    if (phnum === 0 || phentsize < 4) return false;
    const table = Buffer.alloc(phentsize * phnum);
    await file.read(table, 0, table.length, phoff);
    const PT_INTERP = 3;
    for (let i = 0; i < phnum; i++) if (u32(table, i * phentsize) === PT_INTERP) return false;
    return true;
  } finally {
    await file.close();
  }
}

export interface FakeKittBehaviour {
  /** Numbered progress lines on stdout (default 5). */
  lines?: number;
  /** Also print one line to stderr. */
  stderrLine?: boolean;
  /** Seconds to sleep after the lines (a TERM ends the sleep at once, unless ignored). */
  sleepSeconds?: number;
  /** Exit code (default 0). */
  exitCode?: number;
  /** Ignore SIGTERM (the script and what it starts), so only SIGKILL stops it. */
  ignoreSigterm?: boolean;
  /** Start `sleep 300 &` and print `grandchild <pid>`. */
  grandchild?: boolean;
  /** Written to <out>/metrics.json when the exit code is 0 (default a small object; null for none). */
  metrics?: Record<string, unknown> | null;
}

function shellQuote(text: string): string {
  return `'${text.replace(/'/g, "'\\''")}'`;
}

/** Writes `<modelDir>/fake-kitt.env` for the image's fake kitt and returns its path. */
export async function writeFakeKittBehaviour(modelDir: string, behaviour: FakeKittBehaviour): Promise<string> {
  const int = (name: string, value: number, max: number): string => {
    if (!Number.isInteger(value) || value < 0 || value > max) throw new RangeError(`${name} must be an integer 0..${max}, got ${value}`);
    return String(value);
  };
  const lines: string[] = ["# Read by the fake kitt of the KITT test image (@kitt/testkit)."];
  if (behaviour.lines !== undefined) lines.push(`LINES=${int("lines", behaviour.lines, Number.MAX_SAFE_INTEGER)}`);
  if (behaviour.stderrLine === true) lines.push("STDERR_LINE=1");
  if (behaviour.sleepSeconds !== undefined) {
    const s = behaviour.sleepSeconds;
    if (!Number.isFinite(s) || s < 0) throw new RangeError(`sleepSeconds must be a number >= 0, got ${s}`);
    lines.push(`SLEEP=${Number.isInteger(s) ? s : s.toFixed(3)}`);
  }
  if (behaviour.exitCode !== undefined) lines.push(`EXIT=${int("exitCode", behaviour.exitCode, 255)}`);
  if (behaviour.ignoreSigterm === true) lines.push("IGNORE_TERM=1");
  if (behaviour.grandchild === true) lines.push("GRANDCHILD=1");
  if (behaviour.metrics === null) lines.push("METRICS=none");
  else if (behaviour.metrics !== undefined) lines.push(`METRICS=${shellQuote(JSON.stringify(behaviour.metrics))}`);
  await mkdir(modelDir, { recursive: true });
  const path = join(modelDir, FAKE_KITT_ENV_FILE);
  await writeFile(path, `${lines.join("\n")}\n`, { mode: 0o644 });
  return path;
}
