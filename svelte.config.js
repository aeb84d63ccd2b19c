import adapter from "@sveltejs/adapter-static";
import { fileURLToPath } from "node:url";

// The pages are a static SPA that the Worker serves as Workers Static Assets (wrangler.toml [assets]).
const build = fileURLToPath(new URL("./build", import.meta.url));

/** SvelteKit 3 options, passed to the `sveltekit()` Vite plugin in vite.config.ts. */
export default {
  adapter: adapter({ pages: build, assets: build, fallback: "index.html", strict: true }),
};
