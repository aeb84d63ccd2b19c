import { sveltekit } from "@sveltejs/kit/vite";
import { defineConfig } from "vite";
import kit from "./svelte.config.js";

// The SvelteKit app lives in app/; the build lands in build/ for the Worker to serve.
export default defineConfig({
  root: "app",
  plugins: [sveltekit(kit)],
});
