import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";

import { HttpApp, HttpError, sendJson } from "./http-app.js";

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

async function serve(): Promise<{ url: string; errors: string[] }> {
  const errors: string[] = [];
  const logger = { debug() {}, info() {}, warn() {}, error: (m: string) => errors.push(m), child() { return logger; } };
  const app = new HttpApp({ bodyLimitBytes: 1000, maxBodyDepth: 4, logger });
  app.preGet("/open", (req, res) => {
    if (req.query.get("pass") === "1") return false;
    sendJson(res, 200, { open: true });
    return true;
  });
  app.guard((req, res) => {
    if (req.header("x-key") === "k") return false;
    sendJson(res, 401, { error: "no key" });
    return true;
  });
  app.get("/open", (_req, res) => sendJson(res, 200, { open: false }));
  app.get("/items/:id", (req, res) => sendJson(res, 200, { id: req.params.id, q: req.query.get("q") }));
  app.post("/echo", (req, res) => sendJson(res, 200, { body: req.body ?? null, json: req.isJson }));
  app.get("/boom", () => {
    throw new Error("secret internals");
  });
  app.get("/teapot", () => {
    throw new HttpError(418, "short and stout");
  });
  const server = createServer(app.listener());
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, errors };
}

const key = { "x-key": "k" };

async function call(url: string, path: string, init: RequestInit = {}): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url + path, { ...init, headers: { ...key, ...(init.headers as Record<string, string>) } });
  const text = await res.text();
  return { status: res.status, body: text === "" ? "" : (JSON.parse(text) as unknown) };
}

describe("HttpApp (the local API's router on node:http)", () => {
  it("routes with params and queries, guards before routes, pre-routes before guards", async () => {
    const { url } = await serve();
    expect(await call(url, "/items/a%2Db?q=x")).toEqual({ status: 200, body: { id: "a-b", q: "x" } });
    expect(await call(url, "/items/")).toEqual({ status: 404, body: { error: "not found" } });
    expect(await call(url, "/nowhere")).toEqual({ status: 404, body: { error: "not found" } });
    expect(await call(url, "/items/a", { method: "POST" })).toEqual({ status: 404, body: { error: "not found" } });
    expect((await fetch(`${url}/items/a`)).status).toBe(401);
    expect(await (await fetch(`${url}/open`)).json()).toEqual({ open: true });
    expect(await call(url, "/open?pass=1")).toEqual({ status: 200, body: { open: false } });
    expect((await fetch(`${url}/open?pass=1`)).status).toBe(401);
    const head = await fetch(`${url}/items/z`, { method: "HEAD", headers: key });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe("");
    expect(await call(url, "/items/%E0%A4%A")).toEqual({ status: 400, body: { error: "malformed request path" } });
  });

  it("reads JSON bodies strictly, within the size and depth limits", async () => {
    const { url } = await serve();
    const post = (body: string, type = "application/json", extra: Record<string, string> = {}) =>
      call(url, "/echo", { method: "POST", body, headers: { "content-type": type, ...extra } });
    expect(await post('{"a":[1,{"b":2}]}')).toEqual({ status: 200, body: { body: { a: [1, { b: 2 }] }, json: true } });
    expect(await post('{"a":1}', "application/merge-patch+json; charset=UTF-8")).toEqual({ status: 200, body: { body: { a: 1 }, json: true } });
    expect(await post("")).toEqual({ status: 200, body: { body: {}, json: true } });
    expect(await post('{"a":1}', "text/plain")).toEqual({ status: 200, body: { body: null, json: false } });
    expect(await post('"just a string"')).toEqual({ status: 400, body: { error: "body is not valid JSON" } });
    expect(await post("{nope")).toEqual({ status: 400, body: { error: "body is not valid JSON" } });
    expect(await post("[[[[[1]]]]]")).toEqual({ status: 400, body: { error: expect.stringMatching(/^body nests deeper than 4 levels/) } });
    expect(await post('{"a":1}', "application/json; charset=latin1")).toEqual({ status: 415, body: { error: 'unsupported charset "LATIN1"' } });
    expect(await post('{"a":1}', "application/json", { "content-encoding": "gzip" })).toEqual({ status: 415, body: { error: 'unsupported content encoding "gzip"' } });
    expect(await post(`{"a":"${"x".repeat(2000)}"}`)).toEqual({ status: 413, body: { error: "request body too large" } });
    expect(await call(url, "/items/still-serving")).toMatchObject({ status: 200 });
  });

  it("a body over the limit sent without Content-Length (chunked) is cut at the limit", async () => {
    const { url } = await serve();
    const { port } = new URL(url);
    const status = await new Promise<number>((resolve, reject) => {
      const req = request({ host: "127.0.0.1", port, path: "/echo", method: "POST", headers: { ...key, "content-type": "application/json" } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", reject);
      req.write(`{"a":"${"x".repeat(600)}`);
      req.write(`${"y".repeat(600)}"}`);
      req.end();
    });
    expect(status).toBe(413);
  });

  it("answers a handler's own error with its status, an unexpected one with a 500 that hides it", async () => {
    const { url, errors } = await serve();
    expect(await call(url, "/teapot")).toEqual({ status: 418, body: { error: "short and stout" } });
    expect(await call(url, "/boom")).toEqual({ status: 500, body: { error: "internal error" } });
    expect(errors).toEqual(["local API error: secret internals"]);
  });
});
