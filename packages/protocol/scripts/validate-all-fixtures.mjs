// Test-only child (src/validators.test.ts): imports the built package
// (dist/, what the daemon loads), validates every protocol fixture of
// @kitt/testkit against every schema, and prints as JSON what it validated
// and every module it loaded.
import { readdirSync, readFileSync } from "node:fs";
import { createRequire, registerHooks } from "node:module";
import { dirname, join } from "node:path";

const loaded = [];
registerHooks({
  load(url, context, nextLoad) {
    loaded.push(url);
    return nextLoad(url, context);
  },
});

// After the hook: everything from here on is recorded, require() included.
const { check, schemas } = await import("../dist/index.js");

const fixtures = join(dirname(createRequire(import.meta.url).resolve("@kitt/testkit/package.json")), "fixtures", "protocol");
let accepted = 0;
let refused = 0;
for (const file of readdirSync(fixtures, { recursive: true, encoding: "utf8" }).filter((n) => n.endsWith(".json"))) {
  const data = JSON.parse(readFileSync(join(fixtures, file), "utf8"));
  for (const name of Object.keys(schemas)) {
    if (check(name, data) === undefined) accepted++;
    else refused++;
  }
}
process.stdout.write(JSON.stringify({ accepted, refused, loaded }));
