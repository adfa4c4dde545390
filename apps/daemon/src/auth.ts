import { createHash, timingSafeEqual } from "node:crypto";

import type { ServerResponse } from "node:http";

import { type ApiRequest, sendError } from "./http-app.js";

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
export function isProbe(req: ApiRequest, token: string): boolean {
  const header = req.header("authorization");
  if (header !== undefined && header !== "") return false;
  return token !== "" || !isLoopback(req.raw.socket.remoteAddress);
}

/**
 * `Authorization: Bearer <token>`, compared in constant time (both sides are
 * hashed first so their lengths match). An agent configured without a token
 * serves local clients only: anything not from loopback is refused.
 */
export function bearerAuth(token: string): (req: ApiRequest, res: ServerResponse) => boolean {
  const expected = digest(`Bearer ${token}`);
  /** True when the request was refused (answered 401). */
  return (req, res) => {
    if (token === "") {
      if (isLoopback(req.raw.socket.remoteAddress)) return false;
      sendError(res, 401, "this agent has no token configured and serves local clients only");
      return true;
    }
    const header = req.header("authorization");
    if (header === undefined || header === "") {
      sendError(res, 401, "Missing authorization");
      return true;
    }
    if (!timingSafeEqual(digest(header), expected)) {
      sendError(res, 401, "Invalid token");
      return true;
    }
    return false;
  };
}
