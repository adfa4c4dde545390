import type { Router } from "express";
import { methodNotAllowed } from "./fake-http.js";
import type { FakeStore } from "./fake-store.js";

/** Collection paths that the real server redirects to their slashed form (308 keeps method and body). */
const COLLECTIONS = ["/api/v1/quicktest", "/api/v1/agents"];

export function mountRedirects(router: Router): void {
  for (const path of COLLECTIONS) {
    router.all(path, (req, res) => {
      const query = req.originalUrl.slice(req.originalUrl.indexOf("?") >= 0 ? req.originalUrl.indexOf("?") : req.originalUrl.length);
      res.redirect(308, `${path}/${query}`);
    });
  }
}

/** Health, version, the agent package (self-update) and the build context (`kitt-agent build`). */
export function mountMiscRoutes(router: Router, store: FakeStore): void {
  router.route("/api/v1/health").get((_req, res) => res.json({ status: "ok" })).all(methodNotAllowed);
  router
    .route("/api/v1/version")
    .get((_req, res) => res.json({ api_version: "v1", name: "KITT", version: "1.7.0" }))
    .all(methodNotAllowed);
  router
    .route("/api/v1/agent/package")
    .get((_req, res) => {
      const { data, filename } = store.agentPackage;
      res.status(200);
      res.setHeader("Content-Type", "application/gzip");
      res.setHeader("Content-Disposition", `attachment; filename=${filename}`);
      res.setHeader("Content-Length", String(data.length));
      res.end(data);
    })
    .all(methodNotAllowed);
  router
    .route("/api/v1/agent/package/sha256")
    .get((_req, res) => res.json(store.packageDigest()))
    .all(methodNotAllowed);
  router
    .route("/api/v1/agent/build-context")
    .get((_req, res) => {
      const data = store.buildContext;
      if (data === null) {
        res.status(404).json({ error: "Build context not found" });
        return;
      }
      res.status(200);
      res.setHeader("Content-Type", "application/gzip");
      res.setHeader("Content-Disposition", "attachment; filename=kitt-build-context.tar.gz");
      res.setHeader("Content-Length", String(data.length));
      res.end(data);
    })
    .all(methodNotAllowed);
  router
    .route("/api/v1/agent/build-context/sha256")
    .get((_req, res) => {
      const digest = store.servedBuildContextDigest();
      if (digest === undefined) res.status(404).json({ error: "Build context not found" });
      else res.json(digest);
    })
    .all(methodNotAllowed);
}
