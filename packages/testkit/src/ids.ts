import { randomBytes } from "node:crypto";

/** A fresh 16-hex-digit id, the shape the real server uses for agents, tests and commands. */
export function hexId(): string {
  return randomBytes(8).toString("hex");
}

/** "YYYY-MM-DD HH:MM:SS" in UTC: how the real server (SQLite `datetime('now')`) prints timestamps. */
export function sqlTimestamp(date: Date): string {
  return date.toISOString().slice(0, 19).replace("T", " ");
}
