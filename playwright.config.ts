import { defineConfig } from "@playwright/test";
import { chromiumPath, CHROMIUM_FLAGS } from "./test/browser/chromium.ts";

/**
 * The pages in a real browser (the system Chromium, fake camera and
 * microphone) against `npm run dev`: emulator, Worker, Durable Objects and
 * the built pages, all on loopback. Run by `npm test` after vitest.
 */
export default defineConfig({
  testDir: "test/browser",
  outputDir: "test-results/playwright",
  globalSetup: "./test/browser/global-setup.ts",
  fullyParallel: false,
  workers: 1,
  // One retry in CI: a 2-core runner can starve a WebRTC negotiation; a real regression fails twice.
  retries: process.env.CI ? 1 : 0,
  timeout: 120_000,
  expect: { timeout: 20_000 },
  reporter: process.env.CI ? [["list"], ["json", { outputFile: "test-results/playwright.json" }]] : "list",
  use: {
    browserName: "chromium",
    launchOptions: { executablePath: chromiumPath(), args: CHROMIUM_FLAGS },
    permissions: ["camera", "microphone"],
    viewport: { width: 1280, height: 800 },
    trace: "retain-on-failure",
  },
});
