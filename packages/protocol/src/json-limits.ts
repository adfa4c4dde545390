/**
 * Bounds for JSON that comes from outside (a heartbeat command, a
 * benchmark's metrics.json). Everything here walks iteratively: a value
 * nested 300,000 levels deep must be refused, not overflow the stack the
 * way a recursive validator, JSON.stringify or a recursive walk would.
 */

export interface JsonLimits {
  /** Deepest nesting of arrays and objects allowed (the top-level value is depth 1). */
  maxDepth: number;
  /** Largest size allowed, in characters of its JSON text (string escapes not counted). */
  maxBytes: number;
}

/**
 * The first nesting problem in JSON text, without parsing it: brackets are
 * counted outside strings. Returns a one-line reason (never any of the
 * text) or undefined when no array or object is nested deeper than
 * `maxDepth`. Syntax errors are left for JSON.parse to find.
 */
export function jsonTextTooDeep(text: string, maxDepth: number): string | undefined {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (++depth > maxDepth) return `nests deeper than ${maxDepth} levels (at character ${i})`;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      depth--;
    }
  }
  return undefined;
}

function scalarSize(value: unknown): number {
  if (typeof value === "string") return value.length + 2;
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") return String(value).length;
  return 4; // null, and what JSON.stringify would drop or turn into null
}

/**
 * Checks a parsed value against the limits, iteratively, stopping at the
 * first problem. Returns a one-line reason (never any of the value) or
 * undefined when it fits.
 */
export function jsonValueProblem(value: unknown, limits: JsonLimits): string | undefined {
  const stack: Array<{ value: unknown; depth: number }> = [{ value, depth: 1 }];
  let size = 0;
  while (stack.length > 0) {
    const { value: cur, depth } = stack.pop() as { value: unknown; depth: number };
    if (cur === null || typeof cur !== "object") {
      size += scalarSize(cur);
    } else {
      if (depth > limits.maxDepth) return `nests deeper than ${limits.maxDepth} levels`;
      size += 2;
      if (Array.isArray(cur)) {
        for (const item of cur as unknown[]) {
          if ((size += 1) > limits.maxBytes) break;
          stack.push({ value: item, depth: depth + 1 });
        }
      } else {
        for (const key of Object.keys(cur)) {
          if ((size += key.length + 4) > limits.maxBytes) break;
          stack.push({ value: (cur as Record<string, unknown>)[key], depth: depth + 1 });
        }
      }
    }
    if (size > limits.maxBytes) return `is larger than ${limits.maxBytes} bytes`;
  }
  return undefined;
}

/**
 * A short description of a value from outside, for a message: scalars as
 * JSON (strings cut at 40 characters), containers by kind only, so nothing
 * deep or large is ever walked or echoed.
 */
export function describeForeign(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return "an object";
  if (typeof value === "string") return JSON.stringify(value.length > 40 ? `${value.slice(0, 37)}...` : value);
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return typeof value;
}
