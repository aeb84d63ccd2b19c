import type { Context } from "hono";
import { cors } from "hono/cors";
import { loadConfig } from "../config.ts";
import { ApiError } from "../errors.ts";

/**
 * Integrators' front ends live on their own origins (README.md, "From the seed API"). Every
 * API call they make is preflighted (JSON bodies, `x-api-key`), so the API answers CORS for
 * the origins in CORS_ORIGINS: any by default, which is safe because no route reads a cookie —
 * a call is authorised only by what it carries (a key, a ticket, a participant's token).
 * The Worker's own pages are same-origin and always allowed.
 */

/** The origin to allow for a request from `origin`, or null; `"*"` when any is. */
export function allowedOrigin(env: Env, origin: string | undefined, self: string): string | null {
  const { corsOrigins } = loadConfig(env);
  if (corsOrigins === "*") return "*";
  if (!origin) return null;
  return origin === self || corsOrigins.includes(origin) ? origin : null;
}

export const apiCors = cors({
  origin: (origin, c: Context<{ Bindings: Env }>) => allowedOrigin(c.env, origin, new URL(c.req.url).origin),
  allowMethods: ["GET", "POST", "PUT", "DELETE", "OPTIONS"],
  allowHeaders: ["content-type", "x-api-key"],
  // A 429 or a 503 says when to come back; a page on another origin can only read that if exposed.
  exposeHeaders: ["Retry-After"],
  maxAge: 600,
});

/**
 * Browsers do not preflight a WebSocket, but they do send its page's Origin: a socket opened
 * from a page of an origin not allowed is refused as its fetches would be. Clients that are not
 * browsers send no Origin and are not concerned.
 */
export function checkSocketOrigin(c: Context<{ Bindings: Env }>): void {
  const origin = c.req.header("origin");
  if (origin === undefined) return;
  if (allowedOrigin(c.env, origin, new URL(c.req.url).origin) === null)
    throw new ApiError("FORBIDDEN", 403, "Pages of this origin may not open Fanout's sockets (see CORS_ORIGINS).");
}
