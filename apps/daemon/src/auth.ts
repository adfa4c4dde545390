import { createHash, timingSafeEqual } from "node:crypto";

import type { NextFunction, Request, Response } from "express";

function digest(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}

function isLoopback(address: string | undefined): boolean {
  return address === "127.0.0.1" || address === "::1" || address === "::ffff:127.0.0.1";
}

/**
 * A request with no credentials at all (no or an empty Authorization header)
 * that the token check would refuse: on /api/status it gets the original
 * agent's unauthenticated probe answer instead of a 401. A loopback client of
 * an agent without a token passes the check, so it is not a probe.
 */
export function isProbe(req: Request, token: string): boolean {
  const header = req.get("authorization");
  if (header !== undefined && header !== "") return false;
  return token !== "" || !isLoopback(req.socket.remoteAddress);
}

/**
 * `Authorization: Bearer <token>`, compared in constant time (both sides are
 * hashed first so their lengths match). An agent configured without a token
 * serves local clients only: anything not from loopback is refused.
 */
export function bearerAuth(token: string) {
  const expected = digest(`Bearer ${token}`);
  return (req: Request, res: Response, next: NextFunction): void => {
    if (token === "") {
      if (isLoopback(req.socket.remoteAddress)) {
        next();
        return;
      }
      res.status(401).json({ error: "this agent has no token configured and serves local clients only" });
      return;
    }
    const header = req.get("authorization");
    if (header === undefined || header === "") {
      res.status(401).json({ error: "Missing authorization" });
      return;
    }
    if (!timingSafeEqual(digest(header), expected)) {
      res.status(401).json({ error: "Invalid token" });
      return;
    }
    next();
  };
}
