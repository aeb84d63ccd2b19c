import type { Config } from "../config.ts";

/** What every API handler can read from the context. */
export interface AppEnv {
  Bindings: Env;
  Variables: { config: Config; broadcastId: string };
}

export const BROADCAST_ID = /^[a-z0-9-]{1,64}$/;
export const DEFAULT_BROADCAST = "main";
