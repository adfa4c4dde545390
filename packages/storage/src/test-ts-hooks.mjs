// Test-only: lets a child `node` run this package's TypeScript sources
// directly (Node strips the types), mapping the `.js` suffixes of relative
// imports to the `.ts` files beside them.
import { registerHooks } from "node:module";

registerHooks({
  resolve(specifier, context, nextResolve) {
    if (specifier.startsWith(".") && specifier.endsWith(".js") && context.parentURL?.endsWith(".ts")) {
      try {
        return nextResolve(specifier.slice(0, -3) + ".ts", context);
      } catch {
        // Fall through to the specifier as written.
      }
    }
    return nextResolve(specifier, context);
  },
});
