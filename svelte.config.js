import adapter from "@sveltejs/adapter-static";
import { fileURLToPath } from "node:url";

// The pages are a static SPA that the Worker serves as Workers Static Assets (wrangler.toml [assets]).
const build = fileURLToPath(new URL("./build", import.meta.url));

/**
 * SvelteKit 3 options, passed to the `sveltekit()` Vite plugin in vite.config.ts.
 * @type {import("@sveltejs/kit/vite").Config}
 */
const kit = {
  adapter: adapter({ pages: build, assets: build, fallback: "index.html", strict: true }),
  // The pages' Content-Security-Policy, as a <meta> tag with the hash of SvelteKit's inline bootstrap
  // script (so no 'unsafe-inline' for scripts). What a meta tag cannot say (frame-ancestors) is in
  // app/static/_headers. connect-src: this origin, IVS (https/wss) and, for `npm run dev`, the
  // emulator on loopback. worker-src blob: and data: for the IVS SDK's worker.
  csp: {
    mode: "hash",
    directives: {
      "default-src": ["self"],
      "script-src": ["self"],
      "style-src": ["self", "unsafe-inline"],
      "img-src": ["self", "data:", "blob:"],
      "media-src": ["self", "blob:", "mediastream:"],
      "connect-src": [
        "self",
        "https:",
        "wss:",
        "http://127.0.0.1:*",
        "ws://127.0.0.1:*",
        "http://localhost:*",
        "ws://localhost:*",
      ],
      "worker-src": ["self", "blob:", "data:"],
      "object-src": ["none"],
      "base-uri": ["self"],
      "form-action": ["self"],
    },
  },
};

export default kit;
