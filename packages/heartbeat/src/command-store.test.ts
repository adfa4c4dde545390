import { readdir, readFile, writeFile, mkdir } from "node:fs/promises";
import { join } from "node:path";

import { MemoryLogger } from "@kitt/protocol";
import { useTempDir } from "@kitt/testkit";
import { afterEach, describe, expect, it } from "vitest";

import { COMMAND_LEDGER_FILE, FileCommandStore, MemoryCommandStore } from "./command-store.js";

const tempDir = useTempDir(afterEach, "kitt-hb-ledger-");

describe("FileCommandStore", () => {
  it("persists ids and finds them again after a reopen", async () => {
    const dir = await tempDir();
    const store = await FileCommandStore.openIn(dir);
    expect(store.has("a1")).toBe(false);
    await store.add("a1");
    await store.add("b2");
    await store.add("a1");
    const again = await FileCommandStore.openIn(dir);
    expect(again.has("a1")).toBe(true);
    expect(again.has("b2")).toBe(true);
    expect(again.has("c3")).toBe(false);
    expect(again.list()).toEqual(["a1", "b2"]);
    const file = JSON.parse(await readFile(join(dir, COMMAND_LEDGER_FILE), "utf8")) as unknown;
    expect(file).toEqual({ version: 1, ids: ["a1", "b2"] });
  });

  it("addMany records a whole response's ids with one write", async () => {
    const dir = await tempDir();
    const store = await FileCommandStore.openIn(dir);
    const ids = Array.from({ length: 600 }, (_, i) => `cmd-${i}`);
    await store.addMany(ids);
    await store.addMany(["cmd-0", "cmd-1"]); // nothing new: no write
    const again = await FileCommandStore.openIn(dir);
    expect(again.list()).toEqual(ids);
    expect((await readdir(dir)).filter((n) => n.endsWith(".tmp"))).toEqual([]);
  });

  it("keeps only the newest `limit` ids, on disk too", async () => {
    const dir = await tempDir();
    const store = await FileCommandStore.openIn(dir, { limit: 5 });
    for (let i = 0; i < 12; i++) await store.add(`id-${i}`);
    expect(store.has("id-6")).toBe(false);
    expect(store.has("id-7")).toBe(true);
    const again = await FileCommandStore.openIn(dir, { limit: 5 });
    expect(again.list()).toEqual(["id-7", "id-8", "id-9", "id-10", "id-11"]);
  });

  it("loses no id when adds overlap, and leaves no temp file", async () => {
    const dir = await tempDir();
    const store = await FileCommandStore.openIn(join(dir, "nested", "state"));
    await Promise.all(Array.from({ length: 50 }, (_, i) => store.add(`c${i}`)));
    const again = await FileCommandStore.openIn(join(dir, "nested", "state"));
    expect(again.list()).toHaveLength(50);
    expect(await readdir(join(dir, "nested", "state"))).toEqual([COMMAND_LEDGER_FILE]);
  });

  it("moves a corrupt ledger aside and starts empty", async () => {
    const dir = await tempDir();
    await writeFile(join(dir, COMMAND_LEDGER_FILE), "{not json");
    const logger = new MemoryLogger();
    const store = await FileCommandStore.openIn(dir, { logger });
    expect(store.list()).toEqual([]);
    expect(logger.text()).toMatch(/corrupt/);
    expect((await readdir(dir)).sort()).toEqual([`${COMMAND_LEDGER_FILE}.corrupt`]);
    await store.add("x");
    expect((await FileCommandStore.openIn(dir)).has("x")).toBe(true);
  });

  it("fails naming the path when the ledger cannot be read", async () => {
    const dir = await tempDir();
    // A directory where the file should be: reading it fails with EISDIR.
    await mkdir(join(dir, COMMAND_LEDGER_FILE, "blocker"), { recursive: true });
    await expect(FileCommandStore.openIn(dir)).rejects.toThrow(/cannot read command ledger .*heartbeat-commands\.json/);
  });
});

describe("MemoryCommandStore", () => {
  it("is bounded", async () => {
    const store = new MemoryCommandStore(2);
    await store.add("a");
    await store.add("b");
    await store.add("c");
    expect(store.list()).toEqual(["b", "c"]);
    expect(() => new MemoryCommandStore(0)).toThrow(RangeError);
  });
});
