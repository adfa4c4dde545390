import { describe, expect, it } from "vitest";

import { maskToken } from "./config.js";

describe("maskToken", () => {
  it("never shows more than four characters", () => {
    expect(maskToken("")).toBe("(none)");
    expect(maskToken("short")).toBe("*****");
    expect(maskToken("abcdefghijklmnopqrstuvwxyz")).toBe("abcd************");
    expect(maskToken("abcdefghijklmnopqrstuvwxyz")).not.toContain("efgh");
  });
});
