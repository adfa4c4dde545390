import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

const testkitRoot = dirname(createRequire(import.meta.url).resolve("@kitt/testkit/package.json"));

/** A protocol fixture from @kitt/testkit (payloads of kitt-protocol.md). */
export function fixture(name: string): unknown {
  return JSON.parse(readFileSync(join(testkitRoot, "fixtures", "protocol", name), "utf8")) as unknown;
}

/** The names of all protocol fixtures, those under `malformed/` included. */
export function fixtureNames(): string[] {
  return readdirSync(join(testkitRoot, "fixtures", "protocol"), { recursive: true, encoding: "utf8" })
    .filter((name) => name.endsWith(".json"))
    .sort();
}

/** The error a promise rejects with; fails the test if it resolves. */
export async function caught(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected a rejection");
}
