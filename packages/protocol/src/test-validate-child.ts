// Test-only child (validators.test.ts): imports the package from its sources,
// validates every protocol fixture against every schema, and prints as JSON
// what it validated and every module it loaded. Run with
// `node --import ./scripts/ts-source-hooks.mjs`.
import { registerHooks } from "node:module";

const loaded: string[] = [];
registerHooks({
  load(url, context, nextLoad) {
    loaded.push(url);
    return nextLoad(url, context);
  },
});

// After the hook: everything from here on is recorded, require() included.
const { check, schemas } = await import("./index.js");
const { fixture, fixtureNames } = await import("./test-fixtures.js");

let accepted = 0;
let refused = 0;
for (const file of fixtureNames()) {
  const data = fixture(file);
  for (const name of Object.keys(schemas) as (keyof typeof schemas)[]) {
    if (check(name, data) === undefined) accepted++;
    else refused++;
  }
}
process.stdout.write(JSON.stringify({ accepted, refused, loaded }));
