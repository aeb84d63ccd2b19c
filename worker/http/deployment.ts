import { createRoute, z } from "@hono/zod-openapi";
import { loadConfig } from "../config.ts";
import { ApiError } from "../errors.ts";
import { keyMatches } from "./auth.ts";
import { checkRate } from "./rate-limit.ts";
import { adminSecurity, failures, ok, router } from "./router.ts";
import type { Health } from "../../protocol/api.ts";
import { BroadcastEntry, HealthView } from "./schemas.ts";
import { checkTokenKey } from "../tokens/key-check.ts";

/**
 * The routes about the deployment rather than one broadcast, mounted at
 * `/api` (and `/health`): its health, for the operator's first curl and the
 * landing page (no key), and the recent broadcasts (the admin key).
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
  async (c) => c.json({ success: true as const, data: await health(c.env) }, 200),
);

/**
 * The health answer; also served at `/health`, outside `/api`. A configuration error, the token
 * key included (it must parse and be the pair of TOKEN_KEY_ARN's public key), names the variable.
 */
export async function health(env: Env): Promise<Health> {
  const config = loadConfig(env);
  await checkTokenKey(config);
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
    summary: "Recent broadcasts, live first, for the landing page; the admin key only (broadcast ids are share links)",
    security: adminSecurity,
    responses: {
      ...ok(z.object({ broadcasts: z.array(BroadcastEntry) }), "recent broadcasts"),
      ...failures(401, 429, 500),
    },
  }),
  async (c) => {
    const config = loadConfig(c.env);
    await checkRate(c.env, config, "READ_LIMITER", c.req.header("cf-connecting-ip"));
    if (!(await keyMatches(c.req.header("x-api-key"), config.adminKey)))
      throw new ApiError("UNAUTHORIZED", 401, "The list of broadcasts needs the admin key in the x-api-key header.");
    const broadcasts = await c.env.DIRECTORY.getByName("directory").recent(20);
    return c.json({ success: true as const, data: { broadcasts } }, 200);
  },
);
