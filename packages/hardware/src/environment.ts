import type { EnvironmentType } from "@kitt/protocol";
import { hostFileExists, readHostFile, type HostProbe } from "./host.js";

export type { EnvironmentType };

const CONTAINER_CGROUP = /\b(docker|kubepods|lxc|containerd|libpod|crio)\b/;

/**
 * Where the agent runs. DGX markers win over container markers because DGX OS
 * images are the more specific fact about the hardware; checked in the same
 * order as the original agent so a host keeps its classification.
 */
export async function detectEnvironmentType(host: HostProbe): Promise<EnvironmentType> {
  if (host.os.platform === "darwin") return "native_macos";
  if (host.os.platform === "win32") return "native_windows";
  if (host.os.platform !== "linux") return "unknown";

  const [dgxReleaseExists, dgxRelease, dgsConf, procVersion, dockerenv, containerenv, cgroup] = await Promise.all([
    hostFileExists(host, "/etc/dgx-release"),
    readHostFile(host, "/etc/dgx-release"),
    hostFileExists(host, "/etc/nvidia/nvidia-dgs.conf"),
    readHostFile(host, "/proc/version"),
    hostFileExists(host, "/.dockerenv"),
    hostFileExists(host, "/run/.containerenv"),
    readHostFile(host, "/proc/1/cgroup"),
  ]);

  // An unreadable dgx-release still says DGX.
  if (dgxReleaseExists) return dgxRelease !== undefined && /spark/i.test(dgxRelease) ? "dgx_spark" : "dgx";
  if (dgsConf) return "dgx_spark";
  if (procVersion !== undefined && /microsoft|wsl/i.test(procVersion)) return "wsl2";
  if (dockerenv) return "docker";
  if (containerenv) return "container";
  if (cgroup !== undefined && CONTAINER_CGROUP.test(cgroup)) return "container";
  // systemd-nspawn, podman and LXC set `container` in PID 1's environment.
  if ((host.env.container ?? "") !== "") return "container";
  return "native_linux";
}
