import { createHash } from "node:crypto";
import { readFile, readdir } from "node:fs/promises";

import { type FakeKittServer, startFakeKittServer, useTempDir } from "@kitt/testkit";
import { afterEach, describe, expect, it } from "vitest";

import { IntegrityError, ServerError } from "./client-errors.js";
import { BUILD_CONTEXT_FILENAME, KittServerClient } from "./client.js";

const TOKEN = "s3cret-token-build-ctx";
const tempDir = useTempDir(afterEach);
const servers: FakeKittServer[] = [];
const clients: KittServerClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function setup() {
  const srv = await startFakeKittServer({ agents: [{ name: "gpu-node-01", token: TOKEN }] });
  servers.push(srv);
  const c = new KittServerClient({ serverUrl: srv.url, token: TOKEN, retries: 0 });
  clients.push(c);
  return { srv, c, dir: await tempDir() };
}

async function caught(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected a rejection");
}

const context = Buffer.from("pretend this is a build context tarball ".repeat(2000));
const sha = createHash("sha256").update(context).digest("hex");

describe("KittServerClient build context", () => {
  it("reads and validates the digest", async () => {
    const { srv, c } = await setup();
    srv.setBuildContext(context);
    expect(await c.buildContextDigest()).toEqual({ sha256: sha });
    expect(srv.buildContextDigest()).toEqual({ sha256: sha });
    srv.setBuildContextDigest(sha.toUpperCase());
    expect(await c.buildContextDigest()).toEqual({ sha256: sha });
  });

  it("downloads the context and checks it against the digest", async () => {
    const { srv, c, dir } = await setup();
    srv.setBuildContext(context);
    const got = await c.downloadBuildContext(dir);
    expect(got).toEqual({ path: `${dir}/${BUILD_CONTEXT_FILENAME}`, sha256: sha, bytes: context.length });
    expect(await readFile(got.path)).toEqual(context);
    expect(await readdir(dir)).toEqual([BUILD_CONTEXT_FILENAME]);
    expect(srv.requests.map((r) => r.path)).toEqual(["/api/v1/agent/build-context/sha256", "/api/v1/agent/build-context"]);
  });

  it("refuses a context that does not match the digest and leaves nothing behind", async () => {
    const { srv, c, dir } = await setup();
    srv.setBuildContext(context);
    srv.setBuildContextDigest("0".repeat(64));
    const err = await caught(c.downloadBuildContext(dir));
    expect(err).toBeInstanceOf(IntegrityError);
    expect(err.message).toBe(`build context digest mismatch: the download's sha256 ${sha} is not the server's ${"0".repeat(64)}`);
    expect(await readdir(dir)).toEqual([]);
  });

  it("refuses to download without a published digest (404)", async () => {
    const { srv, c, dir } = await setup();
    srv.setBuildContext(context);
    srv.setBuildContextDigest(null);
    const err = await caught(c.downloadBuildContext(dir));
    expect(err).toBeInstanceOf(IntegrityError);
    expect(err.message).toMatch(/^build context digest missing: GET \/api\/v1\/agent\/build-context\/sha256 answered 404/);
    expect(err.cause).toBeInstanceOf(ServerError);
    // The context itself is never asked for.
    expect(srv.requests.map((r) => r.path)).toEqual(["/api/v1/agent/build-context/sha256"]);
    expect(await readdir(dir)).toEqual([]);
  });

  it.each([
    ["a short digest", { sha256: "abc123" }],
    ["a non-hex digest", { sha256: "z".repeat(64) }],
    ["no sha256 key", { digest: "0".repeat(64) }],
    ["a number", { sha256: 42 }],
    ["an array", [sha]],
    ["an empty body", ""],
    ["HTML", "<html>oops</html>"],
  ])("refuses %s as the digest", async (_what, body) => {
    const { srv, c, dir } = await setup();
    srv.setBuildContext(context);
    srv.failNext(1, 200, body, { path: "/api/v1/agent/build-context/sha256" });
    const err = await caught(c.downloadBuildContext(dir));
    expect(err).toBeInstanceOf(IntegrityError);
    expect(err.message).toMatch(/^build context digest invalid: /);
    expect(err.message).not.toContain("\n");
    expect(await readdir(dir)).toEqual([]);
  });

  it("passes other server errors through as they are", async () => {
    const { srv, c, dir } = await setup();
    srv.setBuildContext(context);
    srv.failNext(1, 500, { error: "database is down" }, { path: "/api/v1/agent/build-context/sha256" });
    const err = await caught(c.downloadBuildContext(dir));
    expect(err).toBeInstanceOf(ServerError);
    expect(err.message).toBe("GET /api/v1/agent/build-context/sha256 failed with HTTP 500: database is down");
  });

  it("reports a digest without a context as a server error and leaves nothing behind", async () => {
    const { srv, c, dir } = await setup();
    srv.setBuildContextDigest("0".repeat(64));
    const err = await caught(c.downloadBuildContext(dir));
    expect(err).toBeInstanceOf(ServerError);
    expect((err as ServerError).status).toBe(404);
    expect(await readdir(dir)).toEqual([]);
  });

  it("abandons a download larger than maxBytes", async () => {
    const { srv, c, dir } = await setup();
    srv.setBuildContext(context);
    const err = await caught(c.downloadBuildContext(dir, { maxBytes: 1000 }));
    expect(err.message).toBe("GET /api/v1/agent/build-context: the download is larger than 1000 bytes");
    expect(await readdir(dir)).toEqual([]);
  });
});
