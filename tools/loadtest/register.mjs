// Lets Node 20 run the project's TypeScript sources without a build step:
//   node --import ./tools/loadtest/register.mjs tools/loadtest/loadtest.ts
// `.js` imports that name a `.ts` file resolve to it, and `.ts` files are transpiled (types erased) with the
// project's TypeScript compiler. Used by the load test and by test/server's child-process tests.
import { register } from "node:module";

register("./ts-hooks.mjs", import.meta.url);
