import { describe, it, expect } from "vitest";
import path from "node:path";
import { mkdir, readFile, readdir, writeFile } from "node:fs/promises";
import { MemoryLogger } from "@kitt/protocol";
import { ensureShareMounted, type MountDeps } from "./share-mount.js";
import { runCommand } from "./run-command.js";
import { ModelStore } from "./model-store.js";
import { tempDir, writeModel, writeScript } from "./test-helpers.js";

/**
 * Fake `mount`, `sudo` and `mountpoint` on PATH. Each appends its argv to
 * $FAKE_LOG; env vars pick the behaviour. "Mounting" copies $FAKE_SHARE into
 * the mount point, which then looks like a populated share.
 */
async function fakeBin(dir: string): Promise<string> {
  const bin = path.join(dir, "bin");
  await mkdir(bin);
  await writeScript(
    path.join(bin, "mount"),
    `echo "mount $*" >> "$FAKE_LOG"
for last in "$@"; do :; done
case "$FAKE_MOUNT" in
  ok) cp -R "$FAKE_SHARE"/. "$last" ;;
  noop) exit 0 ;;
  gate) while [ ! -e "$FAKE_GATE" ]; do sleep 0.01; done; cp -R "$FAKE_SHARE"/. "$last" ;;
  hang) exec sleep 30 ;;
  nfs-only) [ "$1" = "-t" ] || { echo "mount: $1: can't find in /etc/fstab." >&2; exit 32; }; cp -R "$FAKE_SHARE"/. "$last" ;;
  *) echo "mount: $1: can't find in /etc/fstab." >&2; exit 32 ;;
esac`,
  );
  await writeScript(
    path.join(bin, "sudo"),
    `echo "sudo $*" >> "$FAKE_LOG"
[ "$1" = "-n" ] || { echo "sudo: expected -n" >&2; exit 2; }
shift
if [ "$1" = "mkdir" ]; then exec "$@"; fi
if [ "$FAKE_SUDO" = "ok" ]; then for last in "$@"; do :; done; cp -R "$FAKE_SHARE"/. "$last"; exit 0; fi
echo "sudo: a password is required" >&2
exit 1`,
  );
  await writeScript(path.join(bin, "mountpoint"), `echo "mountpoint $*" >> "$FAKE_LOG"\nexit "\${FAKE_MOUNTPOINT:-1}"`);
  return bin;
}

/** An unprivileged agent (uid 1000) unless `uid` says otherwise: the suite may well run as root. */
async function setup(env: Record<string, string> = {}, uid = 1000) {
  const root = await tempDir();
  const bin = await fakeBin(root);
  const content = path.join(root, "nas");
  await writeModel(content, { "hf/Qwen/Qwen3-0.6B/config.json": "{}", "hf/Qwen/Qwen3-0.6B/model.safetensors": 4096 });
  const log = path.join(root, "calls.log");
  await writeFile(log, "");
  const mountinfo = path.join(root, "mountinfo");
  await writeFile(mountinfo, "22 1 253:0 / / rw - ext4 /dev/vda rw\n");
  const mount = path.join(root, "mnt", "models");
  const logs: string[] = [];
  const deps: MountDeps = {
    runCommand,
    env: { PATH: `${bin}:${process.env.PATH ?? ""}`, FAKE_LOG: log, FAKE_SHARE: content, ...env },
    mountInfoPath: mountinfo,
    mkdir: async (d) => {
      await mkdir(d, { recursive: true });
    },
    uid,
    timeouts: { mountMs: 10_000, mkdirMs: 10_000, mountpointMs: 10_000 },
    log: (level, message) => logs.push(`${level} ${message}`),
  };
  const calls = async (): Promise<string[]> => (await readFile(log, "utf8")).split("\n").filter((l) => l !== "");
  return { root, mount, mountinfo, deps, logs, calls };
}

/** Poll `check` every 10 ms until it holds (bounded, so a broken test fails instead of hanging). */
async function until(check: () => boolean, limitMs = 20_000): Promise<void> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > limitMs) throw new Error("condition not reached");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe("ensureShareMounted", () => {
  it("accepts a mount point listed in mountinfo, even empty, without running anything", async () => {
    const s = await setup();
    await mkdir(s.mount, { recursive: true });
    await writeFile(s.mountinfo, `22 1 253:0 / / rw - ext4 /dev/vda rw\n36 22 0:45 / ${s.mount} rw - nfs4 nas:/v rw\n`);
    expect(await ensureShareMounted(s.mount, "nas:/v", s.deps)).toMatchObject({ mounted: true, how: "already mounted" });
    expect(await s.calls()).toEqual([]);
  });

  it("accepts a non-empty directory (bind mount, symlink, local copy) without running anything", async () => {
    const s = await setup();
    await writeModel(s.mount, { "some-model/config.json": "{}" });
    expect(await ensureShareMounted(s.mount, "nas:/v", s.deps)).toMatchObject({ mounted: true, how: "non-empty directory" });
    expect(await s.calls()).toEqual([]);
  });

  it("asks `mountpoint -q` when mountinfo cannot be read", async () => {
    const s = await setup({ FAKE_MOUNTPOINT: "0" });
    await mkdir(s.mount, { recursive: true });
    s.deps.mountInfoPath = path.join(s.root, "no-such-mountinfo");
    expect(await ensureShareMounted(s.mount, "nas:/v", s.deps)).toMatchObject({ mounted: true, how: "already mounted" });
    expect(await s.calls()).toEqual([`mountpoint -q ${s.mount}`]);
  });

  it("creates the mount point and mounts it from fstab", async () => {
    const s = await setup({ FAKE_MOUNT: "ok" });
    expect(await ensureShareMounted(s.mount, "nas:/v", s.deps)).toMatchObject({ mounted: true, how: "mounted from fstab" });
    expect(await s.calls()).toEqual([`mount ${s.mount}`]);
    expect(await readdir(path.join(s.mount, "hf", "Qwen"))).toEqual(["Qwen3-0.6B"]);
  });

  it("falls back to sudo -n mount -t nfs and logs the first failure's stderr", async () => {
    const s = await setup({ FAKE_MOUNT: "fail", FAKE_SUDO: "ok" });
    expect(await ensureShareMounted(s.mount, "nas:/volume1/models", s.deps)).toMatchObject({ mounted: true, how: "mounted nas:/volume1/models" });
    expect(await s.calls()).toEqual([`mount ${s.mount}`, `sudo -n mount -t nfs nas:/volume1/models ${s.mount}`]);
    expect(s.logs).toContain(`warn \`mount ${s.mount}\` exited with 32: mount: ${s.mount}: can't find in /etc/fstab.`);
  });

  it("uses sudo -n mkdir -p when creating the mount point is not permitted", async () => {
    const s = await setup({ FAKE_MOUNT: "ok" });
    s.deps.mkdir = async () => {
      throw Object.assign(new Error("EACCES: permission denied, mkdir"), { code: "EACCES" });
    };
    expect((await ensureShareMounted(s.mount, "nas:/v", s.deps)).mounted).toBe(true);
    expect(await s.calls()).toEqual([`sudo -n mkdir -p -- ${s.mount}`, `mount ${s.mount}`]);
  });

  it("reports every failed step with its stderr when nothing works", async () => {
    const s = await setup({ FAKE_MOUNT: "fail", FAKE_SUDO: "fail" });
    const outcome = await ensureShareMounted(s.mount, "nas:/v", s.deps);
    expect(outcome.mounted).toBe(false);
    expect(outcome.failures).toEqual([
      `\`mount ${s.mount}\` exited with 32: mount: ${s.mount}: can't find in /etc/fstab.`,
      `\`sudo -n mount -t nfs nas:/v ${s.mount}\` exited with 1: sudo: a password is required`,
    ]);
  });

  it("does not trust a mount that exits 0 but leaves the directory empty", async () => {
    const s = await setup({ FAKE_MOUNT: "noop", FAKE_SUDO: "ok" });
    const outcome = await ensureShareMounted(s.mount, "nas:/v", s.deps);
    expect(outcome).toMatchObject({ mounted: true, how: "mounted nas:/v" });
    expect(s.logs.some((l) => l.includes("succeeded but") && l.includes("still empty"))).toBe(true);
  });

  it("bounds a hanging mount with the timeout and kills it", async () => {
    const s = await setup({ FAKE_MOUNT: "hang", FAKE_SUDO: "fail" });
    s.deps.timeouts.mountMs = 300;
    const outcome = await ensureShareMounted(s.mount, "nas:/v", s.deps);
    expect(outcome.mounted).toBe(false);
    expect(outcome.failures[0]).toBe(`\`mount ${s.mount}\` timed out after 300 ms`);
  });

  it("as root runs mount -t nfs itself, never sudo (a root host may have no sudo)", async () => {
    const s = await setup({ FAKE_MOUNT: "nfs-only", FAKE_SUDO: "ok" }, 0);
    expect(await ensureShareMounted(s.mount, "nas:/volume1/models", s.deps)).toMatchObject({ mounted: true, how: "mounted nas:/volume1/models" });
    expect(await s.calls()).toEqual([`mount ${s.mount}`, `mount -t nfs nas:/volume1/models ${s.mount}`]);
    expect(s.logs).toContain(`info running mount -t nfs nas:/volume1/models ${s.mount}`);
  });

  it("as root reports a refused mkdir of the mount point without trying sudo", async () => {
    const s = await setup({ FAKE_MOUNT: "nfs-only" }, 0);
    s.deps.mkdir = async () => {
      throw Object.assign(new Error("EACCES: permission denied, mkdir"), { code: "EACCES" });
    };
    const outcome = await ensureShareMounted(s.mount, "nas:/v", s.deps);
    expect(outcome).toMatchObject({ mounted: false, how: `mount point ${s.mount} could not be created` });
    expect(outcome.failures).toEqual([`cannot create mount point ${s.mount}: EACCES: permission denied, mkdir`]);
    expect(await s.calls()).toEqual([]);
  });

  it("names a missing executable", async () => {
    const s = await setup();
    s.deps.env = { PATH: path.join(s.root, "empty-bin") };
    const outcome = await ensureShareMounted(s.mount, "", s.deps);
    expect(outcome.mounted).toBe(false);
    expect(outcome.failures[0]).toMatch(/^`mount .*` could not start: spawn mount ENOENT/);
    expect(outcome.how).toBe(`no model_share_source to mount on ${s.mount}`);
  });
});

describe("ModelStore with an unmounted share", () => {
  it("as root (uid 0) mounts with mount -t nfs directly, then stages the model", async () => {
    const s = await setup({ FAKE_MOUNT: "nfs-only" }, 0);
    const store = await ModelStore.open(
      { modelStorageDir: path.join(s.root, "storage"), modelShareMount: s.mount, modelShareSource: "nas:/volume1/models" },
      { env: s.deps.env, uid: 0, mountInfoPath: s.mountinfo, spaceMarginBytes: 0 },
    );
    const model = await store.resolve("/data/models/hf/Qwen/Qwen3-0.6B");
    expect(model.how).toBe("copied");
    expect(await s.calls()).toEqual([`mount ${s.mount}`, `mount -t nfs nas:/volume1/models ${s.mount}`]);
    model.release();
  });

  it("mounts through the fake commands, then stages the model", async () => {
    const s = await setup({ FAKE_MOUNT: "fail", FAKE_SUDO: "ok" });
    const storage = path.join(s.root, "storage");
    const logger = new MemoryLogger();
    const store = await ModelStore.open(
      { modelStorageDir: storage, modelShareMount: s.mount, modelShareSource: "nas:/volume1/models" },
      { env: s.deps.env, uid: s.deps.uid, mountInfoPath: s.mountinfo, logger, spaceMarginBytes: 0 },
    );
    const lines: string[] = [];
    const model = await store.resolve("/data/models/hf/Qwen/Qwen3-0.6B", { onLog: (l) => lines.push(l) });
    expect(model).toMatchObject({ how: "copied", path: path.join(storage, "hf", "Qwen", "Qwen3-0.6B") });
    expect(await s.calls()).toEqual([`mount ${s.mount}`, `sudo -n mount -t nfs nas:/volume1/models ${s.mount}`]);
    expect(lines.some((l) => l.includes("can't find in /etc/fstab"))).toBe(true);
    model.release();
  });

  it("mounts once when two resolves find the share unmounted at the same time", async () => {
    const s = await setup({ FAKE_MOUNT: "gate" });
    const gate = path.join(s.root, "gate");
    s.deps.env.FAKE_GATE = gate;
    const storage = path.join(s.root, "storage");
    const store = await ModelStore.open(
      { modelStorageDir: storage, modelShareMount: s.mount, modelShareSource: "nas:/volume1/models" },
      { env: s.deps.env, uid: s.deps.uid, mountInfoPath: s.mountinfo, spaceMarginBytes: 0 },
    );
    const lines: string[][] = [[], []];
    const resolves = lines.map((sink) => store.resolve("/data/models/hf/Qwen/Qwen3-0.6B", { onLog: (l) => sink.push(l) }));
    // The fake mount holds until the gate opens: open it only once both
    // resolves got as far as mounting, so that both had the chance to run it.
    const reachedMount = (sink: string[]): boolean => sink.some((l) => /^(running mount |waiting for the mount )/.test(l));
    await until(() => lines.every(reachedMount));
    await writeFile(gate, "");
    const models = await Promise.all(resolves);
    expect(await s.calls()).toEqual([`mount ${s.mount}`]);
    const dest = path.join(storage, "hf", "Qwen", "Qwen3-0.6B");
    for (const m of models) expect(m.path).toBe(dest);
    expect(lines.flat()).toContain(`waiting for the mount of ${s.mount} already in progress`);
    for (const m of models) m.release();
  });

  it("fails the job naming the share and the mount errors when the share cannot be mounted", async () => {
    const s = await setup({ FAKE_MOUNT: "fail", FAKE_SUDO: "fail" });
    const store = await ModelStore.open(
      { modelStorageDir: path.join(s.root, "storage"), modelShareMount: s.mount, modelShareSource: "nas:/volume1/models" },
      { env: s.deps.env, uid: s.deps.uid, mountInfoPath: s.mountinfo },
    );
    const err = await store.resolve("/data/models/hf/Qwen/Qwen3-0.6B").catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "MODEL_NOT_FOUND" });
    const message = (err as Error).message;
    expect(message).toContain(`model "/data/models/hf/Qwen/Qwen3-0.6B" not found`);
    expect(message).toContain(`share ${s.mount} unavailable: could not mount nas:/volume1/models on ${s.mount}`);
    expect(message).toContain("sudo: a password is required");
    expect(message).not.toContain("\n");
  });
});
