import { describe, expect, it } from "vitest";

import { isImageRef, normalizeSettings, parseBoolean, parseNumber } from "./settings.js";
import { fixture } from "./test-fixtures.js";

describe("normalizeSettings", () => {
  it("reads the server defaults (every value a string)", () => {
    const raw = (fixture("heartbeat-response-idle.json") as { settings: Record<string, string> }).settings;
    expect(normalizeSettings(raw)).toEqual({
      settings: { auto_cleanup: true, heartbeat_interval_s: 30, model_storage_dir: "~/.kitt/models" },
      problems: [],
    });
  });

  it.each([
    ["true", true],
    ["True", true],
    ["TRUE", true],
    ["False", false],
    ["false", false],
    ["0", false],
    [true, true],
    [false, false],
  ])("auto_cleanup %j -> %j", (value, expected) => {
    expect(normalizeSettings({ auto_cleanup: value }).settings.auto_cleanup).toBe(expected);
  });

  it("empty strings mean not set", () => {
    expect(normalizeSettings({ auto_cleanup: "", heartbeat_interval_s: "", model_share_mount: "", kitt_image: " " })).toEqual({
      settings: {},
      problems: [],
    });
  });

  it("clamps the interval to 10..300 and says so", () => {
    expect(normalizeSettings({ heartbeat_interval_s: "5" })).toEqual({
      settings: { heartbeat_interval_s: 10 },
      problems: ["heartbeat_interval_s: 5 is outside 10..300, using 10"],
    });
    expect(normalizeSettings({ heartbeat_interval_s: "3600" }).settings.heartbeat_interval_s).toBe(300);
    expect(normalizeSettings({ heartbeat_interval_s: 45 }).settings.heartbeat_interval_s).toBe(45);
  });

  it("ignores unreadable values and unknown keys, reporting the former", () => {
    const out = normalizeSettings({ auto_cleanup: "maybe", heartbeat_interval_s: "soon", new_server_key: "x", model_storage_dir: 7 });
    expect(out.settings).toEqual({});
    expect(out.problems).toEqual([
      'auto_cleanup: expected a boolean, got "maybe"',
      'heartbeat_interval_s: expected seconds, got "soon"',
      "model_storage_dir: expected a string, got 7",
    ]);
  });

  it("accepts null and undefined", () => {
    expect(normalizeSettings(null)).toEqual({ settings: {}, problems: [] });
    expect(normalizeSettings(undefined)).toEqual({ settings: {}, problems: [] });
  });
});

describe("parsers", () => {
  it("parseBoolean", () => {
    expect(parseBoolean("yes")).toBe(true);
    expect(parseBoolean("nope")).toBeUndefined();
    expect(parseBoolean(2)).toBeUndefined();
  });
  it("parseNumber", () => {
    expect(parseNumber(" 30 ")).toBe(30);
    expect(parseNumber("1e2")).toBe(100);
    expect(parseNumber("")).toBeUndefined();
    expect(parseNumber("NaN")).toBeUndefined();
    expect(parseNumber(Infinity)).toBeUndefined();
  });
});

describe("isImageRef", () => {
  const digest = `sha256:${"ab12".repeat(16)}`;
  it.each([
    "kitt",
    "kitt:latest",
    "kitt:1.7.0",
    "kirizan/kitt:1.7.0-CUDA",
    "registry.local:5000/team/kitt:1.7",
    "localhost/kitt",
    "ghcr.io/kirizan/kitt_agent__x:v1",
    `kitt@${digest}`,
    `registry.local/kitt:1.7@${digest}`,
  ])("accepts %s", (ref) => {
    expect(isImageRef(ref)).toBe(true);
  });

  it.each([
    "",
    "kitt latest",
    "Kitt:latest",
    "Kirizan/kitt",
    "-kitt",
    "--privileged",
    "kitt:",
    "kitt:-x",
    "kitt@sha256:abc",
    "../kitt",
    "team//kitt",
    "kitt/",
    "bad_host:99999999/kitt",
    `kitt:${"t".repeat(129)}`,
    "a".repeat(256),
  ])("refuses %j", (ref) => {
    expect(isImageRef(ref)).toBe(false);
  });
});
