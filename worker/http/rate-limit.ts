import { createMiddleware } from "hono/factory";
import type { Config } from "../config.ts";
import { ApiError } from "../errors.ts";

/**
 * Rate limiting of everything a caller without the admin key can reach (the
 * viewer routes, the socket upgrades, the broadcast list), with Workers' rate
 * limiting bindings (wrangler.toml `[[ratelimits]]`). Buckets are per client,
 * whatever broadcast it names (a made-up broadcast id is not a fresh bucket):
 * an IPv4 address, or an IPv6 /64 (one subscriber's whole allocation, which
 * it can rotate through at will). `RATE_LIMITING=off` turns it off (load
 * tests from one address).
 */

export type Limiter = "JOIN_LIMITER" | "PRESENCE_LIMITER" | "SOCKET_LIMITER" | "READ_LIMITER";

/** The bucket of a client address: IPv4 as it is, IPv6 by its /64 prefix. */
export function clientKey(ip: string | undefined): string {
  if (!ip) return "unknown";
  if (!ip.includes(":")) return ip;
  // An IPv4 client seen through IPv6 (`::ffff:192.0.2.1`) is that IPv4 client.
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return mapped[1]!;
  const [head = "", tail = ""] = ip.toLowerCase().split("::", 2);
  const left = head ? head.split(":") : [];
  const right = ip.includes("::") && tail ? tail.split(":") : [];
  // Expand `::` to the zero groups it stands for, then keep the first four groups.
  const groups = ip.includes("::") ? [...left, ...Array(8 - left.length - right.length).fill("0"), ...right] : left;
  const prefix = groups.slice(0, 4).map((g) => (/^[0-9a-f]{1,4}$/.test(g) ? g.replace(/^0+(?=.)/, "") : "?"));
  return `${prefix.join(":")}::/64`;
}

export async function checkRate(
  env: Env,
  config: Pick<Config, "rateLimiting">,
  limiter: Limiter,
  ip: string | undefined,
  periodSeconds = 10,
): Promise<void> {
  if (!config.rateLimiting) return;
  const { success } = await env[limiter].limit({ key: clientKey(ip) });
  if (!success)
    throw new ApiError("RATE_LIMITED", 429, "Too many requests from this address; slow down.", {
      retryAfter: periodSeconds,
    });
}

export function rateLimit(limiter: Limiter) {
  return createMiddleware<{ Bindings: Env; Variables: { config: Config } }>(async (c, next) => {
    await checkRate(c.env, c.var.config, limiter, c.req.header("cf-connecting-ip"));
    await next();
  });
}
