import { describe, expect, it } from "vitest";

import { LineSplitter } from "./line-splitter.js";

function split(chunks: (string | Buffer)[], maxLineChars?: number): string[] {
  const lines: string[] = [];
  const splitter = new LineSplitter((l) => lines.push(l), { maxLineChars });
  for (const c of chunks) splitter.push(c);
  splitter.end();
  return lines;
}

describe("LineSplitter", () => {
  it("splits on \\n, \\r\\n and a lone \\r (progress redraws)", () => {
    expect(split(["a\nb\r\nc\rd"])).toEqual(["a", "b", "c", "d"]);
    expect(split(["Downloading  10%\rDownloading  50%\rDownloading 100%\ndone\n"])).toEqual([
      "Downloading  10%",
      "Downloading  50%",
      "Downloading 100%",
      "done",
    ]);
  });

  it("keeps a \\r\\n split across chunks as one line end", () => {
    expect(split(["one\r", "\ntwo\r", "three"])).toEqual(["one", "two", "three"]);
  });

  it("joins a line split across chunks and emits a last line without newline", () => {
    expect(split(["hel", "lo wo", "rld\nta", "il"])).toEqual(["hello world", "tail"]);
  });

  it("keeps empty lines but adds none at the end", () => {
    expect(split(["a\n\nb\n"])).toEqual(["a", "", "b"]);
    expect(split([""])).toEqual([]);
  });

  it("decodes UTF-8 split in the middle of a character", () => {
    const bytes = Buffer.from("größe 🚀\n");
    expect(split([bytes.subarray(0, 3), bytes.subarray(3, 9), bytes.subarray(9)])).toEqual(["größe 🚀"]);
  });

  it("cuts a very long line with a marker and resumes at the next line", () => {
    const lines = split(["x".repeat(30), "y".repeat(30), "\nnext\n"], 40);
    expect(lines).toEqual([`${"x".repeat(30)}${"y".repeat(10)} [... line cut: 20 more characters]`, "next"]);
  });

  it("counts skipped characters across many chunks", () => {
    const lines = split(Array.from({ length: 100 }, () => "z".repeat(1000)), 64 * 1024);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^z{65536} \[\.\.\. line cut: 34464 more characters\]$/);
  });

  it("gives the same lines however the bytes are chunked", () => {
    const text = "a\r\nb\rc\n\nd\r\re🚀\r\n" + "x".repeat(50) + "\rtail";
    const whole = split([text], 20);
    const bytes = Buffer.from(text);
    for (let cut = 1; cut < bytes.length; cut++) {
      expect(split([bytes.subarray(0, cut), bytes.subarray(cut)], 20)).toEqual(whole);
    }
    const oneByOne = Array.from({ length: bytes.length }, (_, i) => bytes.subarray(i, i + 1));
    expect(split(oneByOne, 20)).toEqual(whole);
    expect(whole).toEqual(["a", "b", "c", "", "d", "", "e🚀", `${"x".repeat(20)} [... line cut: 30 more characters]`, "tail"]);
  });
});
