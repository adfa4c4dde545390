import { describe, expect, it } from "vitest";
import { formatPreflightJson, formatPreflightTable } from "./preflight-format.js";
import type { PreflightResult } from "./preflight-types.js";

const FAILED: PreflightResult = {
  ok: false,
  checks: [
    { id: "node", name: "Node.js >= 22.13", required: true, status: "pass", detail: "v24.21.0" },
    { id: "docker", name: "Docker available", required: true, status: "fail", detail: "docker not found on PATH (install Docker)" },
    { id: "nfs", name: "NFS utilities", required: false, status: "warn", detail: "mount.nfs not found on PATH" },
  ],
};

describe("formatPreflightTable", () => {
  it("aligns the columns and ends with a verdict", () => {
    expect(formatPreflightTable(FAILED)).toBe(
      [
        "CHECK             REQUIRED  STATUS  DETAIL",
        "Node.js >= 22.13  yes       PASS    v24.21.0",
        "Docker available  yes       FAIL    docker not found on PATH (install Docker)",
        "NFS utilities     no        WARN    mount.nfs not found on PATH",
        "",
        "Preflight failed: 1 required check failed, 1 warning.",
      ].join("\n"),
    );
  });

  it("says passed, with the warning count when there are warnings", () => {
    const ok: PreflightResult = { ok: true, checks: FAILED.checks.filter((c) => c.status !== "fail") };
    expect(formatPreflightTable(ok).split("\n").at(-1)).toBe("Preflight passed with 1 warning.");
    const clean: PreflightResult = { ok: true, checks: FAILED.checks.filter((c) => c.status === "pass") };
    expect(formatPreflightTable(clean).split("\n").at(-1)).toBe("Preflight passed.");
  });

  it("shows skipped checks as SKIPPED and names them in the verdict, never as passed", () => {
    const skipped: PreflightResult = {
      ok: true,
      checks: [
        FAILED.checks[0]!,
        { id: "docker-gpu", name: "Docker GPU access", required: true, status: "skipped", detail: "not run: skipped" },
        { id: "nvidia-driver", name: "NVIDIA drivers", required: true, status: "skipped", detail: "not run: skipped" },
      ],
    };
    const lines = formatPreflightTable(skipped).split("\n");
    expect(lines[2]).toBe("Docker GPU access  yes       SKIPPED  not run: skipped");
    expect(lines.at(-1)).toBe("Preflight passed. 2 checks skipped (not run): docker-gpu, nvidia-driver.");
  });
});

describe("formatPreflightJson", () => {
  it("is one JSON document with ok and the checks", () => {
    expect(JSON.parse(formatPreflightJson(FAILED))).toEqual(FAILED);
  });
});
