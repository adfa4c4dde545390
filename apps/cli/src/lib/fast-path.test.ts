import { describe, expect, it } from "vitest";

import { parseFastStart, parseFastStatus } from "./fast-path.js";

describe("parseFastStatus", () => {
  it("takes exactly the plain forms of status; everything else is oclif's", () => {
    const env = {};
    expect(parseFastStatus(["status"], env)).toEqual({ json: false, config: undefined });
    expect(parseFastStatus(["status", "--json"], env)).toEqual({ json: true, config: undefined });
    expect(parseFastStatus(["status", "-c", "/a.yaml", "--json"], env)).toEqual({ json: true, config: "/a.yaml" });
    expect(parseFastStatus(["status", "--config=/b.yaml"], env)).toEqual({ json: false, config: "/b.yaml" });
    expect(parseFastStatus(["status"], { KITT_AGENT_CONFIG: "/env.yaml" })).toEqual({ json: false, config: "/env.yaml" });
    expect(parseFastStatus(["status", "--config", "/flag.yaml"], { KITT_AGENT_CONFIG: "/env.yaml" })?.config).toBe("/flag.yaml");
    for (const argv of [
      ["stop"],
      ["status", "--help"],
      ["status", "-h"],
      ["status", "--debug"],
      ["status", "--json", "--json"],
      ["status", "--config"],
      ["status", "--config", "--json"],
      ["status", "--config="],
      ["status", "-c", "/a", "-c", "/b"],
      ["status", "extra"],
      ["status", "--jsonx"],
    ]) {
      expect(parseFastStatus(argv, env)).toBeUndefined();
    }
  });
});

describe("parseFastStart", () => {
  it("takes the plain forms of start, the daemon then runs without oclif; everything else is oclif's", () => {
    const env = {};
    const plain = { config: undefined, insecure: false, preflight: false, logFormat: "auto" };
    expect(parseFastStart(["start"], env)).toEqual(plain);
    expect(parseFastStart(["start", "--preflight", "--insecure", "--log-format", "json", "-c", "/a.yaml"], env)).toEqual({
      config: "/a.yaml",
      insecure: true,
      preflight: true,
      logFormat: "json",
    });
    expect(parseFastStart(["start", "--log-format=pretty"], { KITT_AGENT_CONFIG: "/env.yaml" })).toEqual({ ...plain, logFormat: "pretty", config: "/env.yaml" });
    for (const argv of [
      ["status"],
      ["start", "--help"],
      ["start", "--log-format", "xml"],
      ["start", "--log-format"],
      ["start", "--log-format="],
      ["start", "--preflight", "--preflight"],
      ["start", "--preflight=yes"],
      ["start", "--json"],
      ["start", "--debug"],
      ["start", "now"],
      ["start", "-c", "/a", "--config", "/b"],
    ]) {
      expect(parseFastStart(argv, env)).toBeUndefined();
    }
  });
});
