import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";
import { LOCAL_CREDENTIALS } from "./emulator/credentials.ts";

import { TEST_ADMIN_KEY, TEST_EVENTS_KEY } from "./test/support/test-keys.ts";

/**
 * The Worker inside workerd, against an emulator process of its own (global-setup.ts). Three
 * projects: self-signed tokens (test/worker/), API tokens (test/worker/api-tokens/), where
 * every token is an IVS call that can fail, and stages spread over several shards
 * (test/worker/shards/; the others have stages of 3 seats, one shard each).
 */
type Inject = (key: "tokenPrivateKey" | "tokenKeyArn") => string;

const OWN_DIRECTORY = { "worker-api-tokens": "test/worker/api-tokens", "worker-shards": "test/worker/shards" };

function workerProject(
  name: "worker" | keyof typeof OWN_DIRECTORY,
  tokens: (inject: Inject) => Record<string, string>,
  bindings: Record<string, string> = {},
) {
  const own = name === "worker" ? undefined : OWN_DIRECTORY[name];
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
            // The arrival rule's seat horizon buys stages ahead of a few joins a second on stages of
            // 3: the tests of the pool count stages one at a time (the rule has unit tests and the scale simulation).
            SCALE_ARRIVAL_SECONDS: "0",
            ...bindings,
          },
        },
      })),
    ],
    test: {
      name,
      include: own ? [`${own}/**/*.test.ts`] : ["test/worker/**/*.test.ts"],
      exclude: own ? [] : Object.values(OWN_DIRECTORY).map((directory) => `${directory}/**`),
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
      // Stages of 10 seats over shards of 3 (3 + 3 + 2 + 2): what a stage of 10,000 over shards of 250 is.
      workerProject(
        "worker-shards",
        (inject) => ({ TOKEN_PRIVATE_KEY: inject("tokenPrivateKey"), TOKEN_KEY_ARN: inject("tokenKeyArn") }),
        { STAGE_CAPACITY: "10", SEATS_PER_SHARD: "3" },
      ),
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
