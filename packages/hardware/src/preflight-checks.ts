import { mkdir, statfs } from "node:fs/promises";
import net from "node:net";
import { openNvml, type NvmlAccess } from "./gpu-detect.js";
import { hostPath, type HostProbe } from "./host.js";
import { querySmi } from "./nvidia-smi.js";
import { versionAtLeast } from "./node-version.js";
import type { CheckOutcome } from "./preflight-types.js";
import { GIB, gib2 } from "./units.js";
import { findOnPath } from "./which.js";

export const MIN_NODE_VERSION = "22.13";

export function checkNode(version: string): CheckOutcome {
  return versionAtLeast(version, MIN_NODE_VERSION)
    ? { ok: true, detail: `v${version.replace(/^v/, "")}` }
    : { ok: false, detail: `found ${version}, need >= ${MIN_NODE_VERSION}` };
}

export async function checkNvidiaDriver(host: HostProbe, access: NvmlAccess, timeoutMs: number): Promise<CheckOutcome> {
  const { nvml, note } = openNvml(access, host);
  if (nvml !== undefined) {
    try {
      const count = nvml.deviceCount();
      const driver = nvml.driverVersion();
      let cuda = "";
      try {
        cuda = `, CUDA ${nvml.cudaDriverVersion()}`;
      } catch {
        // Drivers before r410 cannot tell; the driver itself is fine.
      }
      return count > 0
        ? { ok: true, detail: `driver ${driver}${cuda}, ${count} GPU${count === 1 ? "" : "s"} (NVML)` }
        : { ok: false, detail: `driver ${driver} is loaded but sees no GPU` };
    } catch (error) {
      return { ok: false, detail: `NVML: ${error instanceof Error ? error.message : String(error)}` };
    }
  }
  const query = await querySmi(host, ["driver_version", "name"], { timeoutMs });
  if (query.ok) {
    const count = query.rows.length;
    const driver = query.rows[0]?.driver_version ?? "unknown";
    return count > 0
      ? { ok: true, detail: `driver ${driver}, ${count} GPU${count === 1 ? "" : "s"} (nvidia-smi)` }
      : { ok: false, detail: "nvidia-smi lists no GPU" };
  }
  if (query.missing) {
    return { ok: false, detail: "no NVIDIA driver: libnvidia-ml.so.1 cannot be loaded and nvidia-smi is not on PATH" };
  }
  const nvmlWhy = note === undefined ? "" : `; ${note}`;
  return { ok: false, detail: `${query.message}${nvmlWhy}` };
}

export async function checkNfs(host: HostProbe): Promise<CheckOutcome> {
  // mount(8) finds its helpers in /sbin whatever the user's PATH says (sudo's secure_path has them too).
  const sbin = ["/sbin", "/usr/sbin"].map((d) => hostPath(host, d));
  const path = await findOnPath("mount.nfs", { PATH: [host.env.PATH ?? "", ...sbin].filter((p) => p !== "").join(":") });
  return path !== undefined
    ? { ok: true, detail: `mount.nfs at ${path}` }
    : { ok: false, detail: "mount.nfs not found on PATH (install nfs-common or nfs-utils to use NFS model shares)" };
}

export async function checkDisk(dir: string, minFreeGb: number): Promise<CheckOutcome> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (error) {
    return { ok: false, detail: `cannot create ${dir}: ${(error as NodeJS.ErrnoException).code ?? String(error)}` };
  }
  try {
    const stats = await statfs(dir);
    const freeBytes = Number(stats.bavail) * Number(stats.bsize);
    // The figure `status` and the heartbeat (storage_gb_free) carry for the same disk: GiB, two decimals.
    const free = `${gib2(freeBytes)} GiB free at ${dir}`;
    return freeBytes / GIB >= minFreeGb ? { ok: true, detail: free } : { ok: false, detail: `only ${free} (want ${minFreeGb} GiB)` };
  } catch (error) {
    return { ok: false, detail: `cannot read free space of ${dir}: ${(error as NodeJS.ErrnoException).code ?? String(error)}` };
  }
}

/** Binds the port on every interface, as the agent will, then lets it go. */
export function checkPort(port: number): Promise<CheckOutcome> {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    return Promise.resolve({ ok: false, detail: `not a TCP port: ${port}` });
  }
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "EADDRINUSE") resolve({ ok: false, detail: `port ${port} is in use` });
      else if (error.code === "EACCES") resolve({ ok: false, detail: `no permission to bind port ${port}` });
      else resolve({ ok: false, detail: `cannot bind port ${port}: ${error.code ?? error.message}` });
    });
    server.listen({ port, host: "0.0.0.0", exclusive: true }, () => {
      server.close(() => resolve({ ok: true, detail: `port ${port} is free` }));
    });
  });
}

export async function checkBenchmarkCli(host: HostProbe, command: string): Promise<CheckOutcome> {
  const path = await findOnPath(command, host.env);
  return path !== undefined
    ? { ok: true, detail: `${command} at ${path}` }
    : { ok: false, detail: `${command} not found on PATH (install the KITT benchmark CLI)` };
}
