import type { Config } from "../config.ts";

/** What every API handler can read from the context. */
export interface AppEnv {
  Bindings: Env;
  Variables: { config: Config; broadcastId: string };
}
