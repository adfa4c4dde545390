// Bundles `kitt-agent status` (dist/lib/status-command.js and everything it
// imports statically: the report, agent.yaml's loader and field table,
// js-yaml) into one module, dist/lib/status-bundle.js, which the fast path
// loads (run by `build` after tsc). One module to resolve, read, compile and
// link instead of 13 is about 10 ms of CPU on every `status`
// (bench/README.md). The daemon client and the service commands stay
// separate modules: status imports them only when something listens on the
// agent's port, or a unit file exists.
//
// The bundle is written ASCII-only: V8 keeps a source with a single
// non-ASCII character as two bytes per character (js-yaml has three), so each
// one is written as a \u escape (they sit in string and template literals
// and regular expressions, where the escape means the same character).
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { build } from "rolldown";

const entry = fileURLToPath(new URL("../dist/lib/status-command.js", import.meta.url));
const target = fileURLToPath(new URL("../dist/lib/status-bundle.js", import.meta.url));
const LAZY = ["./daemon-client.js", "./service.js"];
// Any character past ASCII (code points from 0x80 up).
const NON_ASCII = /[\u0080-\u{10ffff}]/gu;

const result = await build({
  input: entry,
  platform: "node",
  // Builtins stay imports; the lazily imported modules stay the dist files next to the bundle.
  external: (id) => id.startsWith("node:") || LAZY.includes(id),
  write: false,
  logLevel: "warn",
  output: { format: "esm", minify: true, codeSplitting: false },
});
if (result.output.length !== 1 || result.output[0].type !== "chunk") {
  throw new Error(`bundle-status: expected one chunk, got ${result.output.map((o) => o.fileName).join(", ")}`);
}
let code = result.output[0].code;
const imports = [...code.matchAll(/import\((["'`])([^"'`]+)\1\)/g)].map((m) => m[2]).sort();
if (JSON.stringify(imports) !== JSON.stringify([...LAZY].sort())) {
  throw new Error(`bundle-status: the bundle's dynamic imports are ${JSON.stringify(imports)}, expected ${JSON.stringify(LAZY)}`);
}
// Builtins taken with process.getBuiltinModule, not ESM imports: an ESM import
// of a builtin builds its module facade, reading every export (node:fs's lazy
// ReadStream getter loads the file streams); about 3 ms per run for the five
// builtins here.
code = code.replace(/import\{([^}]*)\}from"(node:[a-z_/]+)";?/g, (_, names, id) => {
  const fields = names.split(",").map((n) => {
    const m = /^\s*([\w$]+)(?:\s+as\s+([\w$]+))?\s*$/.exec(n);
    if (m === null) throw new Error(`bundle-status: cannot rewrite the import of ${id}: {${names}}`);
    return m[2] === undefined ? m[1] : `${m[1]}:${m[2]}`;
  });
  return `const{${fields.join(",")}}=process.getBuiltinModule(${JSON.stringify(id)});`;
});
if (/from\s*["']node:|import\s*["']node:/.test(code)) throw new Error("bundle-status: a builtin import is left that the rewrite does not know");
code = code.replace(NON_ASCII, (ch) => {
  const cp = ch.codePointAt(0);
  if (cp <= 0xffff) return `\\u${cp.toString(16).padStart(4, "0")}`;
  const v = cp - 0x10000;
  return `\\u${(0xd800 + (v >> 10)).toString(16)}\\u${(0xdc00 + (v & 0x3ff)).toString(16)}`;
});
writeFileSync(target, `// Built by scripts/bundle-status.mjs from dist/lib/status-command.js; do not edit.\n${code}`);
// Read back: what the fast path will load.
if (/[\u0080-\u00ff]/.test(readFileSync(target, "latin1"))) throw new Error("bundle-status: the bundle is not ASCII");
