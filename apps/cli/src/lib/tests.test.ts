import { describe, expect, it } from "vitest";
import { SAFE_ID_PATTERN } from "@kitt/protocol";

import { cancelCommandId } from "./tests.js";

const safe = new RegExp(SAFE_ID_PATTERN);

describe("cancelCommandId", () => {
  it("is cancel-<id> while that fits the daemon's 64 characters", () => {
    expect(cancelCommandId("3f2a9c0d1e4b5a6c")).toBe("cancel-3f2a9c0d1e4b5a6c");
    const fits = "a".repeat(57);
    expect(cancelCommandId(fits)).toBe(`cancel-${fits}`);
  });

  it("stays a valid daemon command id for the longest test ids, and tells ids with a common prefix apart", () => {
    const a = `${"x".repeat(60)}aaaa`;
    const b = `${"x".repeat(60)}bbbb`;
    for (const id of [a, b, "y".repeat(58)]) {
      expect(cancelCommandId(id)).toHaveLength(64);
      expect(cancelCommandId(id)).toMatch(safe);
      expect(cancelCommandId(id).startsWith(`cancel-${id.slice(0, 40)}-`)).toBe(true);
    }
    expect(cancelCommandId(a)).not.toBe(cancelCommandId(b));
    expect(cancelCommandId(a)).toBe(cancelCommandId(a));
  });
});
