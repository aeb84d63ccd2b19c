import { createRoute, z } from "@hono/zod-openapi";
import { loadConfig } from "../config.ts";
import { failures, ok, router } from "./router.ts";
import type { Health } from "../../protocol/api.ts";
import { BroadcastEntry, HealthView } from "./schemas.ts";

/**
 * The routes about the deployment rather than one broadcast, mounted at
 * `/api` (and `/health`): its health, for the operator's first curl and the
 * landing page, and the recent broadcasts. No key needed.
 */
export const deployment = router();

deployment.openapi(
  createRoute({
    method: "get",
    path: "/health",
    tags: ["deployment"],
    summary: "Status, region, token mode and fan-out mode; a configuration error names the variable",
    responses: { ...ok(HealthView, "healthy"), ...failures(500) },
  }),
  (c) => c.json({ success: true as const, data: health(c.env) }, 200),
);

/** The health answer; also served at `/health`, outside `/api`. */
export function health(env: Env): Health {
  const config = loadConfig(env);
  return {
    status: "ok",
    region: config.ivs.region,
    tokens: config.tokenKey ? "self-signed" : "api",
    mode: config.mode,
    time: new Date().toISOString(),
  };
}

deployment.openapi(
  createRoute({
    method: "get",
    path: "/broadcasts",
    tags: ["deployment"],
    summary: "Recent broadcasts, live first, for the landing page",
    responses: { ...ok(z.object({ broadcasts: z.array(BroadcastEntry) }), "recent broadcasts"), ...failures(500) },
  }),
  async (c) => {
    loadConfig(c.env);
    const broadcasts = await c.env.DIRECTORY.getByName("directory").recent(20);
    return c.json({ success: true as const, data: { broadcasts } }, 200);
  },
);
