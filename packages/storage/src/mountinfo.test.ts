import { describe, it, expect } from "vitest";
import path from "node:path";
import { writeFile } from "node:fs/promises";
import { parseMountPoints, readMountPoints } from "./mountinfo.js";
import { tempDir } from "./test-helpers.js";

const SAMPLE = [
  "22 1 253:0 / / rw,relatime shared:1 - ext4 /dev/vda rw",
  "36 22 0:45 / /mnt/models rw,relatime shared:20 - nfs4 nas:/volume1/models rw,vers=4.2",
  "37 22 0:46 / /mnt/with\\040space rw - tmpfs tmpfs rw",
  "38 22 0:47 / /mnt/back\\134slash rw master:3 - tmpfs tmpfs rw",
  "garbage line",
  "",
].join("\n");

describe("parseMountPoints", () => {
  it("reads the mount point field and unescapes octal sequences", () => {
    expect(parseMountPoints(SAMPLE)).toEqual(["/", "/mnt/models", "/mnt/with space", "/mnt/back\\slash"]);
  });
});

describe("readMountPoints", () => {
  it("reads a file and reports an unreadable one as undefined", async () => {
    const dir = await tempDir();
    const file = path.join(dir, "mountinfo");
    await writeFile(file, SAMPLE);
    expect(await readMountPoints(file)).toContain("/mnt/models");
    expect(await readMountPoints(path.join(dir, "missing"))).toBeUndefined();
  });

  it("parses this machine's real mountinfo, which always lists /", async () => {
    const points = await readMountPoints("/proc/self/mountinfo");
    if (points !== undefined) expect(points).toContain("/");
  });
});
