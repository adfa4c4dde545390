import { describe, expect, it } from "vitest";
import { ConfigError, KittError, UsageError } from "@kitt/protocol";
import { Errors } from "@oclif/core";

import { classifyError, renderError } from "./errors.js";

describe("classifyError", () => {
  it("maps usage errors to 2 and other kitt errors to 1, one line each", () => {
    expect(classifyError(new UsageError("bad flag\nsecond line"))).toMatchObject({ exitCode: 2, message: "bad flag", bug: false });
    expect(classifyError(new ConfigError("/x/agent.yaml: not found"))).toMatchObject({ exitCode: 2, bug: false });
    expect(classifyError(new KittError("server down", { code: "CONNECTION" }))).toMatchObject({ exitCode: 1, message: "server down" });
    // A subclass with its own code (e.g. storage's ModelPathError) is still the user's to fix.
    class PathError extends UsageError {}
    expect(classifyError(new PathError("bad path", { code: "MODEL_PATH_REFUSED" }))).toMatchObject({ exitCode: 2 });
  });

  it("treats oclif parse errors and exit() as oclif meant them", () => {
    expect(classifyError(new Errors.CLIError("Nonexistent flag: --x\nSee more help with --help"))).toMatchObject({
      exitCode: 2,
      message: "Nonexistent flag: --x",
    });
    expect(classifyError(new Errors.ExitError(1))).toMatchObject({ exitCode: 1, message: "" });
    expect(classifyError(new Errors.ExitError(3))).toMatchObject({ exitCode: 3, message: "" });
  });

  it("reports an unanticipated error as a bug with its stack", () => {
    const report = classifyError(new TypeError("x is not a function"));
    expect(report).toMatchObject({ exitCode: 1, bug: true, message: "unexpected error: x is not a function" });
    expect(renderError(report, false)).toContain("TypeError: x is not a function\n    at ");
    expect(classifyError("thrown string")).toMatchObject({ exitCode: 1, bug: true });
  });

  it("prints a stack for a known error only with --debug", () => {
    const report = classifyError(new UsageError("bad"));
    expect(renderError(report, false)).toBe("Error: bad\n");
    expect(renderError(report, true).split("\n").length).toBeGreaterThan(2);
    expect(renderError(classifyError(new Errors.ExitError(1)), true)).toBe("");
  });
});
