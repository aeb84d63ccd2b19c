import { createMiddleware } from "hono/factory";
import { ApiError } from "../errors.ts";
import type { AppEnv } from "./context.ts";

/**
 * Rate limiting of the open routes, per client IP, with Workers' rate
 * limiting bindings (wrangler.toml `[[ratelimits]]`). `RATE_LIMITING=off`
 * turns it off (load tests from one address).
 */
export function rateLimit(binding: "JOIN_LIMITER" | "PRESENCE_LIMITER", periodSeconds = 10) {
  return createMiddleware<AppEnv>(async (c, next) => {
    if (c.var.config.rateLimiting) {
      const ip = c.req.header("cf-connecting-ip") ?? "local";
      const { success } = await c.env[binding].limit({ key: `${c.var.broadcastId}:${ip}` });
      if (!success) {
        throw new ApiError("RATE_LIMITED", 429, "Too many requests from this address; slow down.", {
          retryAfter: periodSeconds,
        });
      }
    }
    await next();
  });
}
