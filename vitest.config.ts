import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";
import { LOCAL_CREDENTIALS } from "./emulator/credentials.ts";

import { TEST_ADMIN_KEY, TEST_EVENTS_KEY } from "./test/support/test-keys.ts";

/**
 * The Worker inside workerd, against an emulator process of its own (global-setup.ts). Two
 * projects: self-signed tokens (test/worker/), and API tokens (test/worker/api-tokens/), where
 * every token is an IVS call that can fail.
 */
type Inject = (key: "tokenPrivateKey" | "tokenKeyArn") => string;

function workerProject(name: "worker" | "worker-api-tokens", tokens: (inject: Inject) => Record<string, string>) {
  const apiTokens = name === "worker-api-tokens";
  return {
    plugins: [
      cloudflareTest(({ inject }) => ({
        wrangler: { configPath: "./wrangler.toml" },
        miniflare: {
          bindings: {
            IVS_ENDPOINT: inject("emulatorUrl"),
            AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
            AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
            ADMIN_KEY: TEST_ADMIN_KEY,
            IVS_EVENTS_KEY: TEST_EVENTS_KEY,
            ...tokens(inject as Inject),
            IVS_TIMEOUT_MS: "2000",
            // Small stages, so that a handful of viewers exercises the whole scaling policy.
            STAGE_CAPACITY: "3",
            MAX_STAGES: "4",
            STAGE_WARMUP_SECONDS: "0",
            DRAIN_TIMEOUT_SECONDS: "30",
            // Every test client is one address: the tests of rate limiting turn it on for themselves.
            RATE_LIMITING: "off",
            // Few enough that a test can reach the caps: 8 stats sockets over two relays of 4.
            SOCKETS_PER_BROADCAST: "8",
            STATS_SOCKETS_PER_RELAY: "4",
          },
        },
      })),
    ],
    test: {
      name,
      include: apiTokens ? ["test/worker/api-tokens/**/*.test.ts"] : ["test/worker/**/*.test.ts"],
      exclude: apiTokens ? [] : ["test/worker/api-tokens/**"],
      globalSetup: ["test/worker/global-setup.ts"],
      // One emulator serves every file of a project, and fault injection is global to it: one file at a time.
      fileParallelism: false,
      // Stages, shards and alarms settle in seconds, not milliseconds.
      testTimeout: 30_000,
    },
  };
}

export default defineConfig({
  test: {
    // In CI a JSON report too, from which .ci/run prints its closing "N passed, N failed" line.
    reporters: process.env.CI ? ["default", "json"] : ["default"],
    outputFile: { json: "test-results/vitest.json" },
    projects: [
      {
        test: {
          name: "node",
          include: ["test/unit/**/*.test.ts", "test/emulator/**/*.test.ts", "test/scripts/**/*.test.ts"],
          environment: "node",
        },
      },
      // Self-signed tokens: a join costs no IVS call.
      workerProject("worker", (inject) => ({
        TOKEN_PRIVATE_KEY: inject("tokenPrivateKey"),
        TOKEN_KEY_ARN: inject("tokenKeyArn"),
      })),
      // No token key (empty overrides a local .dev.vars): every token is CreateParticipantToken.
      workerProject("worker-api-tokens", () => ({ TOKEN_PRIVATE_KEY: "", TOKEN_KEY_ARN: "" })),
      {
        test: {
          name: "e2e",
          include: ["test/e2e/**/*.test.ts"],
          environment: "node",
          testTimeout: 120_000,
          hookTimeout: 30_000,
          // After the others: it rebuilds build/, which the worker project serves.
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
