import express, { type NextFunction, type Request, type Response } from "express";
import type { TLSSocket } from "node:tls";
import type { FaultInjector } from "./fake-faults.js";
import { sendError } from "./fake-http.js";
import { mountAgentRoutes } from "./fake-routes-agents.js";
import { mountMiscRoutes, mountRedirects } from "./fake-routes-misc.js";
import { mountQuicktestRoutes } from "./fake-routes-quicktest.js";
import type { RecordedRequest, RequestLogEntry } from "./fake-server-types.js";
import type { FakeStore } from "./fake-store.js";

export interface AppContext {
  store: FakeStore;
  faults: FaultInjector;
  adminToken: () => string | null;
  onRequest?: (entry: RequestLogEntry) => void;
}

function clientCertCN(req: Request): string | null {
  const socket = req.socket as Partial<TLSSocket>;
  if (typeof socket.getPeerCertificate !== "function") return null;
  const cn: unknown = socket.getPeerCertificate().subject?.CN;
  return typeof cn === "string" ? cn : null;
}

/** Builds the Express app: record -> faults -> redirects -> KITT routes -> 404/500 in Flask's JSON shape. */
export function createFakeApp(ctx: AppContext): express.Express {
  const app = express();
  app.disable("x-powered-by");
  // Raw bytes for every request: the routes decide, like Flask, whether the body counts as JSON.
  app.use(express.raw({ type: () => true, limit: "64mb" }));
  app.use((req: Request, res: Response, next: NextFunction) => {
    const started = Date.now();
    const entry: RecordedRequest = {
      method: req.method,
      path: req.path,
      url: req.originalUrl,
      headers: { ...req.headers },
      body: Buffer.isBuffer(req.body) ? req.body.toString("utf8") : "",
      clientCertCN: clientCertCN(req),
      remotePort: req.socket.remotePort ?? null,
      fault: null,
      receivedAt: new Date(),
    };
    ctx.store.requests.push(entry);
    res.locals.recorded = entry;
    res.on("close", () => ctx.store.notify());
    ctx.store.notify();
    if (ctx.onRequest) {
      const report = ctx.onRequest;
      let reported = false;
      const done = (status: number | null): void => {
        if (reported) return;
        reported = true;
        report({ method: entry.method, url: entry.url, status, durationMs: Date.now() - started, fault: entry.fault });
      };
      res.on("finish", () => done(res.statusCode));
      res.on("close", () => done(res.writableFinished ? res.statusCode : null));
    }
    next();
  });
  app.use(ctx.faults.middleware());

  // Strict routing: "/api/v1/health/" is not "/api/v1/health", as in Flask.
  const router = express.Router({ strict: true });
  mountRedirects(router);
  mountMiscRoutes(router, ctx.store);
  mountAgentRoutes(router, ctx.store);
  mountQuicktestRoutes(router, ctx.store, ctx.adminToken);
  app.use(router);

  app.use((_req: Request, res: Response) => sendError(res, 404, "Not found"));
  app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const status = (error as { status?: unknown }).status;
    if (typeof status === "number" && status >= 400 && status < 500) return sendError(res, status, "Bad request");
    sendError(res, 500, "Internal server error");
  });
  return app;
}
