// `node --import ./scripts/ts-source-hooks.mjs FILE.ts`: lets node run this
// package's TypeScript sources as they are (Node strips the types) by mapping
// the `.js` suffixes of relative imports in `.ts` files to the `.ts` files
// beside them. Used by gen-validators.mjs (reads src/schemas.ts before any
// build).
import { registerHooks } from "node:module";

registerHooks({
  resolve(specifier, context, nextResolve) {
    if (specifier.startsWith(".") && specifier.endsWith(".js") && context.parentURL?.endsWith(".ts")) {
      try {
        return nextResolve(`${specifier.slice(0, -3)}.ts`, context);
      } catch {
        // Fall through to the specifier as written.
      }
    }
    return nextResolve(specifier, context);
  },
});
