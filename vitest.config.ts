import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";
import { LOCAL_CREDENTIALS } from "./emulator/credentials.ts";

import { TEST_ADMIN_KEY } from "./test/support/test-keys.ts";

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
      {
        plugins: [
          cloudflareTest(({ inject }) => ({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              bindings: {
                IVS_ENDPOINT: inject("emulatorUrl"),
                AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
                AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
                ADMIN_KEY: TEST_ADMIN_KEY,
                TOKEN_PRIVATE_KEY: inject("tokenPrivateKey"),
                TOKEN_KEY_ARN: inject("tokenKeyArn"),
                IVS_TIMEOUT_MS: "2000",
                // Small stages, so that a handful of viewers exercises the whole scaling policy.
                STAGE_CAPACITY: "3",
                MAX_STAGES: "4",
                STAGE_WARMUP_SECONDS: "0",
                DRAIN_TIMEOUT_SECONDS: "30",
              },
            },
          })),
        ],
        test: {
          name: "worker",
          include: ["test/worker/**/*.test.ts"],
          globalSetup: ["test/worker/global-setup.ts"],
          // One emulator serves every file, and fault injection is global to it: one file at a time.
          fileParallelism: false,
          // Stages, shards and alarms settle in seconds, not milliseconds.
          testTimeout: 30_000,
        },
      },
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
