import type { TestProject } from "vitest/node";
import { LOCAL_CREDENTIALS } from "../../emulator/credentials.ts";
import { spawnEmulator } from "../../emulator/process.ts";
import { IvsClient } from "../../worker/ivs/client.ts";
import { createTokenKey } from "../../scripts/token-key.ts";

/**
 * The Worker tests run against a real emulator on loopback, in a process of
 * its own, with a token key imported into it as `npm run dev` would do.
 */
export default async function setup(project: TestProject) {
  const emulator = await spawnEmulator(["--port", "0", "--quiet"]);
  const ivs = new IvsClient({ region: "us-east-1", endpoint: emulator.url, ...LOCAL_CREDENTIALS });
  const key = await createTokenKey(ivs, "fanout-tests");
  project.provide("emulatorUrl", emulator.url);
  project.provide("tokenPrivateKey", key.privateKey);
  project.provide("tokenKeyArn", key.keyArn);
  return () => emulator.stop();
}

declare module "vitest" {
  export interface ProvidedContext {
    emulatorUrl: string;
    tokenPrivateKey: string;
    tokenKeyArn: string;
  }
}
