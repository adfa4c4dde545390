import { describeForeign } from "./json-limits.js";
import type { AgentSettings } from "./messages.js";

export const HEARTBEAT_INTERVAL_MIN_S = 10;
export const HEARTBEAT_INTERVAL_MAX_S = 300;

const TRUE_WORDS = new Set(["true", "1", "yes", "on"]);
const FALSE_WORDS = new Set(["false", "0", "no", "off"]);

/** `"true"`, `"True"`, `"1"`, `true` -> true; undefined when it is no boolean. */
export function parseBoolean(value: unknown): boolean | undefined {
  if (typeof value === "boolean") return value;
  if (typeof value === "number") return value === 1 ? true : value === 0 ? false : undefined;
  if (typeof value !== "string") return undefined;
  const word = value.trim().toLowerCase();
  if (TRUE_WORDS.has(word)) return true;
  if (FALSE_WORDS.has(word)) return false;
  return undefined;
}

/** A finite number from a number or a numeric string; undefined otherwise. */
export function parseNumber(value: unknown): number | undefined {
  if (typeof value === "number") return Number.isFinite(value) ? value : undefined;
  if (typeof value !== "string" || value.trim() === "") return undefined;
  const n = Number(value.trim());
  return Number.isFinite(n) ? n : undefined;
}

export function clampInterval(seconds: number): number {
  return Math.min(HEARTBEAT_INTERVAL_MAX_S, Math.max(HEARTBEAT_INTERVAL_MIN_S, seconds));
}

const STRING_KEYS = ["model_storage_dir", "model_share_source", "model_share_mount"] as const;

/**
 * A Docker image reference as the engine's own grammar reads it
 * (`kitt:latest`, `registry:5000/team/kitt:1.7`, `kitt@sha256:<64 hex>`):
 * an optional registry host (with port), lower-case path components, an
 * optional tag, an optional digest; at most 255 characters. Nothing that
 * could read as an option or a path escape passes.
 */
const IMAGE_DOMAIN = /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]{1,5})?$/;
const IMAGE_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const IMAGE_TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const IMAGE_DIGEST = /^sha256:[a-f0-9]{64}$/;

export function isImageRef(value: string): boolean {
  if (value.length === 0 || value.length > 255) return false;
  let rest = value;
  const at = rest.indexOf("@");
  if (at >= 0) {
    if (!IMAGE_DIGEST.test(rest.slice(at + 1))) return false;
    rest = rest.slice(0, at);
  }
  const colon = rest.lastIndexOf(":");
  if (colon > rest.lastIndexOf("/")) {
    if (!IMAGE_TAG.test(rest.slice(colon + 1))) return false;
    rest = rest.slice(0, colon);
  }
  const parts = rest.split("/");
  const first = parts[0] ?? "";
  if (parts.length > 1 && (first.includes(".") || first.includes(":") || first === "localhost")) {
    if (!IMAGE_DOMAIN.test(first)) return false;
    parts.shift();
  }
  return parts.length > 0 && parts.every((part) => IMAGE_COMPONENT.test(part));
}

/** A settings value longer than this is not taken (paths and image names are far shorter). */
export const MAX_SETTING_CHARS = 4096;

/**
 * Reads the server's settings tolerantly, each key on its own. An empty
 * string (or null) means "not set" and leaves the key out, so the local
 * value stays; unknown keys are ignored whatever they hold; a value that
 * cannot be read (wrong type, an object, longer than
 * {@link MAX_SETTING_CHARS}) is left out and named in `problems` instead of
 * failing the whole heartbeat. Problems describe values briefly and never
 * walk into them.
 */
export function normalizeSettings(raw: Readonly<Record<string, unknown>> | null | undefined): {
  settings: AgentSettings;
  problems: string[];
} {
  const settings: AgentSettings = {};
  const problems: string[] = [];
  if (raw === null || raw === undefined) return { settings, problems };
  const isUnset = (v: unknown) => v === null || v === undefined || (typeof v === "string" && v.trim() === "");
  /** The value of `key` when it can be read at all: a scalar of bounded size. */
  const readable = (key: string): string | number | boolean | undefined => {
    const v = raw[key];
    if (isUnset(v)) return undefined;
    if (typeof v === "string" && v.length > MAX_SETTING_CHARS) problems.push(`${key}: longer than ${MAX_SETTING_CHARS} characters`);
    else if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") return v;
    else problems.push(`${key}: expected a string, got ${describeForeign(v)}`);
    return undefined;
  };

  const autoCleanup = readable("auto_cleanup");
  if (autoCleanup !== undefined) {
    const b = parseBoolean(autoCleanup);
    if (b === undefined) problems.push(`auto_cleanup: expected a boolean, got ${describeForeign(autoCleanup)}`);
    else settings.auto_cleanup = b;
  }
  const interval = readable("heartbeat_interval_s");
  if (interval !== undefined) {
    const n = parseNumber(interval);
    if (n === undefined || n <= 0) {
      problems.push(`heartbeat_interval_s: expected seconds, got ${describeForeign(interval)}`);
    } else {
      const clamped = clampInterval(n);
      if (clamped !== n) {
        problems.push(
          `heartbeat_interval_s: ${n} is outside ${HEARTBEAT_INTERVAL_MIN_S}..${HEARTBEAT_INTERVAL_MAX_S}, using ${clamped}`,
        );
      }
      settings.heartbeat_interval_s = clamped;
    }
  }
  for (const key of STRING_KEYS) {
    const v = readable(key);
    if (v === undefined) continue;
    if (typeof v !== "string") problems.push(`${key}: expected a string, got ${describeForeign(v)}`);
    else settings[key] = v.trim();
  }
  const image = readable("kitt_image");
  if (image !== undefined) {
    if (typeof image !== "string" || !isImageRef(image.trim())) problems.push(`kitt_image: expected a Docker image reference, got ${describeForeign(image)}`);
    else settings.kitt_image = image.trim();
  }
  return { settings, problems };
}
