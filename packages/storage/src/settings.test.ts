import { describe, it, expect } from "vitest";
import { ConfigError } from "@kitt/protocol";
import { normalizeStorageSettings } from "./settings.js";

const HOME = "/home/kitt";

describe("normalizeStorageSettings", () => {
  it("defaults to ~/.kitt/models, no share, auto cleanup on", () => {
    expect(normalizeStorageSettings({}, undefined, HOME)).toEqual({
      modelStorageDir: "/home/kitt/.kitt/models",
      modelShareSource: "",
      modelShareMount: "",
      autoCleanup: true,
    });
  });

  it("merges a patch over the base, keeping fields the patch leaves out", () => {
    const base = normalizeStorageSettings({ modelShareMount: "/mnt/models", modelShareSource: "nas:/volume1/models" }, undefined, HOME);
    const next = normalizeStorageSettings({ autoCleanup: false, modelStorageDir: "/data/models/" }, base, HOME);
    expect(next).toEqual({
      modelStorageDir: "/data/models",
      modelShareSource: "nas:/volume1/models",
      modelShareMount: "/mnt/models",
      autoCleanup: false,
    });
  });

  it.each([
    [{ modelStorageDir: "relative/models" }, "model_storage_dir must be an absolute path"],
    [{ modelStorageDir: "/" }, "model_storage_dir must be a dedicated directory"],
    [{ modelStorageDir: "~" }, "model_storage_dir must be a dedicated directory"],
    [{ modelShareMount: "mnt" }, "model_share_mount must be an absolute path"],
    [{ modelShareMount: "/" }, `model_share_mount must not be "/"`],
    [{ modelShareMount: "/home/kitt/.kitt" }, "must not contain each other"],
    [{ modelShareMount: "/home/kitt/.kitt/models/share" }, "must not contain each other"],
    [{ modelShareSource: "-o remount" }, "model_share_source must look like host:/export/path"],
    [{ modelShareSource: "nas" }, "model_share_source must look like host:/export/path"],
    [{ modelStorageDir: "/data/x\ny" }, "contains a control character"],
  ])("refuses %j", (patch, message) => {
    expect(() => normalizeStorageSettings(patch, undefined, HOME)).toThrow(ConfigError);
    expect(() => normalizeStorageSettings(patch, undefined, HOME)).toThrow(message);
  });
});
