import { fileURLToPath } from "node:url";
import { readDevVars } from "../../scripts/dev-vars.ts";
import { startDev } from "../support/dev-server.ts";
import { freePort } from "../support/ports.ts";

/**
 * `npm run dev` for the browser tests, on free ports with its own state,
 * with two seats per stage so a handful of tabs spreads over stages, and no
 * provisioning ahead of the join rate (neither the lead nor the arrivals' seats), so which stage a viewer lands on is
 * decided by load alone. The example viewer (examples/viewer) is served from another origin on
 * FANOUT_EXAMPLE_PORT, the one origin besides its own that this Fanout allows (CORS_ORIGINS).
 */
export default async function globalSetup() {
  const examplePort = await freePort();
  process.env.FANOUT_EXAMPLE_PORT = String(examplePort);
  const dev = await startDev([
    "--var",
    `CORS_ORIGINS=http://127.0.0.1:${examplePort}`,
    "--var",
    "STAGE_CAPACITY=2",
    "--var",
    "SCALE_LEAD_SECONDS=0",
    "--var",
    "SCALE_ARRIVAL_SECONDS=0",
    "--var",
    "RATE_LIMITING=off",
    // Any price: the dashboard test checks that the estimate is shown and adds up.
    "--var",
    "PRICE_PER_PARTICIPANT_HOUR=0.01",
  ]);
  process.env.FANOUT_URL = dev.url;
  process.env.FANOUT_EMULATOR_URL = dev.emulatorUrl;
  process.env.FANOUT_ADMIN_KEY = readDevVars(fileURLToPath(new URL("../../.dev.vars", import.meta.url))).get(
    "ADMIN_KEY",
  );
  return async () => {
    await dev.stop();
  };
}
