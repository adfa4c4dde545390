import { createHash, timingSafeEqual } from "node:crypto";

import type { NextFunction, Request, Response } from "express";

function digest(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}

function isLoopback(address: string | undefined): boolean {
  return address === "127.0.0.1" || address === "::1" || address === "::ffff:127.0.0.1";
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
