import { check } from "@kitt/protocol";
import { describe, expect, it } from "vitest";

import { buildHeartbeatBody } from "./payload.js";
import type { StatusSnapshot } from "./types.js";

describe("buildHeartbeatBody", () => {
  it("sends the snapshot's fields plus uptime, valid for the protocol schema", () => {
    const body = buildHeartbeatBody(
      {
        status: "running",
        current_task: "abc123",
        gpu_utilization_pct: 37,
        gpu_memory_used_gb: 12.5,
        storage_gb_free: 812.4,
        gpus: [
          { index: 0, name: "NVIDIA H200", uuid: "GPU-0", utilization_pct: 37, memory_used_gb: 12.5 },
          { index: 1, name: "NVIDIA H200", uuid: "GPU-1", utilization_pct: 0, memory_used_gb: 0.3 },
        ],
        engines: [{ engine: "vllm", installed: true, running: false, version: "0.6.3" }],
      },
      3600.234,
    );
    expect(body).toEqual({
      status: "running",
      current_task: "abc123",
      gpu_utilization_pct: 37,
      gpu_memory_used_gb: 12.5,
      storage_gb_free: 812.4,
      uptime_s: 3600.2,
      gpus: [
        { index: 0, name: "NVIDIA H200", uuid: "GPU-0", utilization_pct: 37, memory_used_gb: 12.5 },
        { index: 1, name: "NVIDIA H200", uuid: "GPU-1", utilization_pct: 0, memory_used_gb: 0.3 },
      ],
      engines: [{ engine: "vllm", installed: true, running: false, version: "0.6.3" }],
    });
    expect(check("heartbeatRequest", body)).toBeUndefined();
  });

  it("drops figures the schema would reject instead of losing the heartbeat", () => {
    const messy = {
      status: "busy",
      current_task: 42,
      gpu_utilization_pct: Number.NaN,
      gpu_memory_used_gb: Infinity,
      storage_gb_free: "812",
      extra: "field",
      gpus: [
        { index: 0, name: "A", uuid: "GPU-0", utilization_pct: Number.NaN, temperature_c: 40, vendor: "x" },
        { index: -1, name: "B", uuid: "GPU-1" },
        null,
      ],
      engines: [{ engine: "vllm", installed: "yes", running: false }],
    } as unknown as StatusSnapshot;
    const body = buildHeartbeatBody(messy, Number.NaN);
    expect(body).toEqual({
      status: "idle",
      current_task: "",
      gpus: [{ index: 0, name: "A", uuid: "GPU-0", temperature_c: 40 }],
      engines: [],
    });
    expect(check("heartbeatRequest", body)).toBeUndefined();
    // Proof the schema is strict, so the cleaning above is needed.
    expect(check("heartbeatRequest", messy)).toBeDefined();
  });
});
