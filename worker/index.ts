import { Hono } from "hono";
import type { Health, SuccessEnvelope } from "../protocol/api.ts";
import { ApiError, errorEnvelope } from "./errors.ts";
import { ConfigError, loadConfig } from "./config.ts";

/**
 * The Fanout Worker: `/api/*` and `/health` here; every other path is the
 * SvelteKit build, served by Workers Static Assets with the SPA fallback
 * (wrangler.toml `[assets]`).
 */

const app = new Hono<{ Bindings: Env }>();

app.onError((error, c) => {
  if (error instanceof ApiError) {
    if (error.retryAfter !== undefined) c.header("Retry-After", String(error.retryAfter));
    return c.json(errorEnvelope(error), error.status);
  }
  if (error instanceof ConfigError) {
    // The operator's first `curl /health` after a deploy should say what is missing.
    console.error(error.message);
    return c.json(errorEnvelope(new ApiError("INTERNAL_ERROR", 500, error.message)), 500);
  }
  // No stack or detail leaves the Worker: it could carry a secret or an upstream message.
  console.error("unhandled error", error instanceof Error ? `${error.name}: ${error.message}` : String(error));
  return c.json(errorEnvelope(new ApiError("INTERNAL_ERROR", 500, "Internal error.")), 500);
});

app.notFound((c) =>
  c.json(errorEnvelope(new ApiError("NOT_FOUND", 404, `No route for ${c.req.method} ${c.req.path}.`)), 404),
);

const health = (env: Env): SuccessEnvelope<Health> => {
  const config = loadConfig(env);
  return {
    success: true,
    data: {
      status: "ok",
      region: config.ivs.region,
      tokens: config.tokenKey ? "self-signed" : "api",
      mode: config.mode,
      time: new Date().toISOString(),
    },
  };
};

app.get("/health", (c) => c.json(health(c.env)));
app.get("/api/health", (c) => c.json(health(c.env)));

export default {
  fetch: app.fetch,
} satisfies ExportedHandler<Env>;
