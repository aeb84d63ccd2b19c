import { fileURLToPath } from "node:url";
import { readDevVars } from "../../scripts/dev-vars.ts";
import { startDev } from "../support/dev-server.ts";

/**
 * `npm run dev` for the browser tests, on free ports with its own state,
 * with two seats per stage so a handful of tabs spreads over stages, and no
 * provisioning ahead of the join rate, so which stage a viewer lands on is
 * decided by load alone.
 */
export default async function globalSetup() {
  const dev = await startDev([
    "--var",
    "STAGE_CAPACITY=2",
    "--var",
    "SCALE_LEAD_SECONDS=0",
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
