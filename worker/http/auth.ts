import { createMiddleware } from "hono/factory";
import type { Config } from "../config.ts";
import { ApiError } from "../errors.ts";
import type { AppEnv } from "./context.ts";

/**
 * Keys arrive in `x-api-key` (README.md, "HTTP API") and are compared in constant time:
 * both sides are hashed first so that neither length nor content leaks
 * through timing. Keys are never logged.
 */
export async function keyMatches(given: string | undefined, expected: string | undefined): Promise<boolean> {
  if (!given || !expected) return false;
  const encoder = new TextEncoder();
  const [a, b] = await Promise.all([
    crypto.subtle.digest("SHA-256", encoder.encode(given)),
    crypto.subtle.digest("SHA-256", encoder.encode(expected)),
  ]);
  return crypto.subtle.timingSafeEqual(a, b);
}

const unauthorized = () => new ApiError("UNAUTHORIZED", 401, "A valid key is required in the x-api-key header.");

export const requireAdmin = createMiddleware<AppEnv>(async (c, next) => {
  if (!(await keyMatches(c.req.header("x-api-key"), c.var.config.adminKey))) throw unauthorized();
  await next();
});

/** Open by default, so a share link works without a secret in the browser; `VIEWER_ACCESS=key` closes it. */
export const requireViewerAccess = createMiddleware<AppEnv>(async (c, next) => {
  if ((await accessOf(c.var.config, c.req.header("x-api-key"))) === "none") throw unauthorized();
  await next();
});

/**
 * What a key (or none) opens: `admin` (the admin key), `viewer` (the viewer key, or nothing on
 * an open deployment), `none` (a deployment with `VIEWER_ACCESS=key`, and no right key).
 */
export async function accessOf(
  config: Pick<Config, "adminKey" | "viewerKey" | "viewerAccess">,
  given: string | undefined,
): Promise<"admin" | "viewer" | "none"> {
  if (await keyMatches(given, config.adminKey)) return "admin";
  if (config.viewerAccess === "open" || (await keyMatches(given, config.viewerKey))) return "viewer";
  return "none";
}
