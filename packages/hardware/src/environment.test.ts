import { afterEach, describe, expect, it } from "vitest";
import { detectEnvironmentType } from "./environment.js";
import { makeFakeMachine, type FakeMachine } from "./test-host.js";

const machines: FakeMachine[] = [];
afterEach(async () => {
  await Promise.all(machines.splice(0).map((m) => m.cleanup()));
});

async function envOf(files: Record<string, string>, extra: Parameters<typeof makeFakeMachine>[0] = {}): Promise<string> {
  const m = await makeFakeMachine({ files, ...extra });
  machines.push(m);
  return detectEnvironmentType(m.host);
}

const LINUX_VERSION = "Linux version 6.8.0-45-generic (buildd@lcy02-amd64-075) (gcc 13.2.0) #45-Ubuntu SMP\n";

describe("detectEnvironmentType", () => {
  it("DGX Spark from /etc/dgx-release mentioning spark", async () => {
    expect(await envOf({ "/etc/dgx-release": 'DGX_NAME="DGX Spark"\nDGX_PRETTY_NAME="NVIDIA DGX Spark"\n' })).toBe(
      "dgx_spark",
    );
  });

  it("DGX Spark from /etc/nvidia/nvidia-dgs.conf alone", async () => {
    expect(await envOf({ "/etc/nvidia/nvidia-dgs.conf": "x=1\n", "/proc/version": LINUX_VERSION })).toBe("dgx_spark");
  });

  it("DGX from a dgx-release without spark, even inside Docker", async () => {
    expect(await envOf({ "/etc/dgx-release": 'DGX_NAME="DGX Server"\nDGX_OTA_VERSION="6.2.1"\n', "/.dockerenv": "" })).toBe(
      "dgx",
    );
  });

  it("WSL2 from a Microsoft kernel", async () => {
    expect(
      await envOf({ "/proc/version": "Linux version 5.15.153.1-microsoft-standard-WSL2 (root@941d701f84f1)\n" }),
    ).toBe("wsl2");
  });

  it("Docker from /.dockerenv", async () => {
    expect(await envOf({ "/.dockerenv": "", "/proc/version": LINUX_VERSION })).toBe("docker");
  });

  it("other containers: podman's /run/.containerenv, kubepods or lxc cgroups, the container variable", async () => {
    expect(await envOf({ "/run/.containerenv": "engine=\"podman-4.9\"\n" })).toBe("container");
    expect(await envOf({ "/proc/1/cgroup": "0::/kubepods/besteffort/pod1234/abcd\n" })).toBe("container");
    expect(await envOf({ "/proc/1/cgroup": "12:cpuset:/lxc/web01\n" })).toBe("container");
    expect(await envOf({}, { env: { container: "systemd-nspawn" } })).toBe("container");
  });

  it("native Linux when no marker is present (a host cgroup v2 line is not a container)", async () => {
    expect(await envOf({ "/proc/version": LINUX_VERSION, "/proc/1/cgroup": "0::/init.scope\n" })).toBe("native_linux");
  });

  it("macOS, Windows and others from the platform", async () => {
    expect(await envOf({}, { os: { platform: "darwin" } })).toBe("native_macos");
    expect(await envOf({}, { os: { platform: "win32" } })).toBe("native_windows");
    expect(await envOf({}, { os: { platform: "freebsd" } })).toBe("unknown");
  });
});
