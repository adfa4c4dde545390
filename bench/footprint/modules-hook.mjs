// node --import bench/footprint/modules-hook.mjs ...: when the process exits,
// prints to stderr how many modules it loaded (ESM and CommonJS, node:
// builtins included), grouped by package. Used by `bench:footprint --modules`.
import { registerHooks } from "node:module";

const seen = new Set();
registerHooks({
  load(url, context, next) {
    seen.add(url);
    return next(url, context);
  },
});

function group(url) {
  if (url.startsWith("node:")) return "node: builtins";
  const pkg = /node_modules\/(?:\.pnpm\/[^/]+\/node_modules\/)?((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg !== null) return pkg[1];
  const own = /\/(packages|apps)\/([^/]+)\//.exec(url);
  return own !== null ? `(kitt) ${own[1]}/${own[2]}` : "(other)";
}

process.on("exit", () => {
  const counts = new Map();
  for (const url of seen) counts.set(group(url), (counts.get(group(url)) ?? 0) + 1);
  const rows = [...counts].sort((a, b) => b[1] - a[1]).map(([name, n]) => `  ${String(n).padStart(4)}  ${name}`);
  process.stderr.write(`modules: ${seen.size} loaded\n${rows.join("\n")}\n`);
});
