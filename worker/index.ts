import { Hono, type Context } from "hono";
import { HTTPException } from "hono/http-exception";
import { secureHeaders } from "hono/secure-headers";
import { BROADCAST_ID_RULE, DEFAULT_BROADCAST, isBroadcastId } from "../protocol/ids.ts";
import { ConfigError, loadConfig, type Config } from "./config.ts";
import { reconcileAll } from "./cron.ts";
import { ApiError, errorEnvelope } from "./errors.ts";
import { accessOf } from "./http/auth.ts";
import { apiCors, checkSocketOrigin } from "./http/cors.ts";
import { broadcastExists, broadcastNotFound } from "./http/existence.ts";
import { checkRate } from "./http/rate-limit.ts";
import { apiRoutes, openApiDocument } from "./http/api.ts";
import { deployment, health } from "./http/deployment.ts";
import { ivsEvents } from "./http/ivs-events.ts";
import { cachedRoutingTable } from "./join/cached-table.ts";
import { relayName } from "./broadcast/channels.ts";
import { relaysToTry } from "./broadcast/timing.ts";
import { viewerShard } from "./shard/route.ts";

export { AccountBudget } from "./account/budget.ts";
export { Broadcast } from "./broadcast/broadcast.ts";
export { Directory } from "./directory/directory.ts";
export { StageShard } from "./shard/stage-shard.ts";
export { StatsRelay } from "./relay/stats-relay.ts";

/**
 * The Fanout Worker: `/api/*`, `/health` and the WebSockets here; every
 * other path is the SvelteKit build, served by Workers Static Assets with the
 * SPA fallback (wrangler.toml `[assets]`).
 */

const app = new Hono<{ Bindings: Env }>();

// What the Worker answers itself (the API, /health, the sockets) carries the usual security headers
// (nosniff, no-referrer, not frameable, ...); the pages get theirs from app/static/_headers.
// Cross-origin reads stay allowed: the API is for integrators' own front ends.
// A socket's 101 answer comes from its Durable Object with headers that cannot change: left as it is.
const securityHeaders = secureHeaders({ crossOriginResourcePolicy: false, crossOriginOpenerPolicy: false });
app.use((c, next) => (c.req.header("Upgrade")?.toLowerCase() === "websocket" ? next() : securityHeaders(c, next)));

// Integrators' pages on other origins (CORS_ORIGINS): preflights answered, errors readable too.
app.use("/api/*", apiCors);
app.use("/health", apiCors);

app.onError((error, c) => {
  if (error instanceof ApiError) {
    if (error.retryAfter !== undefined) c.header("Retry-After", String(error.retryAfter));
    if (error.status >= 500)
      console.error(`${error.code}: ${error.message}${error.cause ? ` (${(error.cause as Error).message})` : ""}`);
    return c.json(errorEnvelope(error), error.status);
  }
  if (error instanceof HTTPException && error.status < 500) {
    // Hono's own request parsing (malformed JSON, a body that is not JSON): the caller's mistake, not a 500.
    const message =
      error.status === 415
        ? "Send the request body as JSON (Content-Type: application/json)."
        : error.status === 400
          ? "The request body is not valid JSON."
          : error.message;
    return c.json(errorEnvelope(new ApiError("VALIDATION_ERROR", error.status, message)), error.status);
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

const notFound = (c: Context) =>
  c.json(errorEnvelope(new ApiError("NOT_FOUND", 404, `No route for ${c.req.method} ${c.req.path}.`)), 404);
app.notFound(notFound);

// The deployment's own routes: `/api/health` and `/api/broadcasts`, and `/health` for a bare curl.
app.route("/api", deployment);
app.route("/api", ivsEvents);
app.get("/health", async (c) => c.json({ success: true as const, data: await health(c.env) }));

app.get("/api/openapi.json", (c) => c.json(openApiDocument(new URL(c.req.url).origin)));

// ── WebSockets ───────────────────────────────────────────────────────────────

/**
 * What every socket upgrade passes before it reaches an object: a valid broadcast id, an
 * upgrade, the client's rate limit, no secret in the URL (a `ticket` or `apiKey` query
 * parameter is refused, so no integrator leaks one into logs), and a broadcast that exists.
 */
async function openingSocket(c: Context<{ Bindings: Env }>): Promise<{ config: Config; broadcastId: string }> {
  const config = loadConfig(c.env);
  const broadcastId = c.req.param("broadcastId") ?? DEFAULT_BROADCAST;
  if (!isBroadcastId(broadcastId)) throw new ApiError("VALIDATION_ERROR", 400, BROADCAST_ID_RULE);
  checkSocketOrigin(c);
  if (c.req.header("Upgrade")?.toLowerCase() !== "websocket")
    throw new ApiError("VALIDATION_ERROR", 426, "This endpoint speaks WebSocket only.");
  await checkRate(c.env, config, "SOCKET_LIMITER", c.req.header("cf-connecting-ip"));
  if (c.req.query("ticket") !== undefined || c.req.query("apiKey") !== undefined)
    throw new ApiError(
      "VALIDATION_ERROR",
      400,
      'Secrets never go in a URL: send the ticket as the socket\'s first message ({"type":"auth","ticket":"..."}), or the key in x-api-key.',
    );
  if (!(await broadcastExists(c.env, broadcastId))) throw broadcastNotFound(broadcastId);
  return { config, broadcastId };
}

/**
 * `/ws`: the stats channel or, with `type=broadcaster`, the broadcaster channel. The upgrade
 * says what its key opens (x-api-key: admin, viewer, or nothing); a socket without the admin
 * key gets the operator's rights only by redeeming a ticket in its first message.
 */
async function broadcastSocket(c: Context<{ Bindings: Env }>): Promise<Response> {
  const { config, broadcastId } = await openingSocket(c);
  const channel = c.req.query("type") === "broadcaster" ? "broadcaster" : "stats";
  const access = await accessOf(config, c.req.header("x-api-key"));
  // Set here, whatever the client sent: the objects trust these headers. The key itself goes no further.
  const headers = new Headers(c.req.raw.headers);
  headers.delete("x-api-key");
  headers.set("x-fanout-channel", channel);
  headers.set("x-fanout-access", channel === "broadcaster" && access !== "admin" ? "none" : access);
  if (channel === "stats") return statsSocket(c, config, broadcastId, headers);
  const response = await c.env.BROADCAST.getByName(broadcastId).fetch(new Request(c.req.raw, { headers }));
  if (response.status === 503) throw fullOfSockets();
  return response;
}

/** Relays tried for one stats socket before it is refused. */
const RELAY_TRIES = 3;

/**
 * A stats socket goes to one of the broadcast's relays (relay/stats-relay.ts): a random one of
 * those the routing table names (random: nothing the client chooses, so no one piles sockets onto
 * one relay), not one reported full, another random one when it is full. The table names more
 * relays as their sockets add up; a relay is created by its first socket.
 */
async function statsSocket(
  c: Context<{ Bindings: Env }>,
  config: Config,
  broadcastId: string,
  headers: Headers,
): Promise<Response> {
  const { maxRelays } = config.limits;
  const table = await cachedRoutingTable(c.env, broadcastId);
  const spread = Math.min(maxRelays, Math.max(1, table.statsRelays ?? 1));
  for (const index of relaysToTry(spread, table.fullRelays ?? [], RELAY_TRIES)) {
    headers.set("x-fanout-relay", relayName(broadcastId, index));
    const relay = c.env.STATS_RELAY.getByName(relayName(broadcastId, index));
    const response = await relay.fetch(new Request(c.req.raw, { headers }));
    if (response.status !== 503) return response;
  }
  throw fullOfSockets();
}

const fullOfSockets = () =>
  new ApiError("RATE_LIMITED", 429, "This broadcast has all the connections it takes; try again shortly.", {
    retryAfter: 30,
  });

/**
 * The viewer socket: presence without heartbeats, live viewer count, live/ended, migrate. Opened
 * for a participant the stage admitted; its first message proves it with the participant's token.
 */
async function viewerSocket(c: Context<{ Bindings: Env }>): Promise<Response> {
  const { broadcastId } = await openingSocket(c);
  const stageArn = c.req.query("stageArn") ?? "";
  const table = await cachedRoutingTable(c.env, broadcastId);
  const stage = table.stages.find((s) => s.arn === stageArn);
  if (!stage) throw new ApiError("NOT_FOUND", 404, "That stage is not part of this broadcast.");
  const response = await viewerShard(c.env, stage, c.req.query("participantId") ?? "").fetch(c.req.raw);
  if (response.status === 404)
    throw new ApiError("NOT_FOUND", 404, "This participant was not admitted to that stage; ask for a token first.");
  return response;
}

app.get("/ws", broadcastSocket);
app.get("/api/broadcasts/:broadcastId/ws", broadcastSocket);
app.get("/api/viewer/ws", viewerSocket);
app.get("/api/broadcasts/:broadcastId/viewer/ws", viewerSocket);

// ── the API: unprefixed (broadcast `main`) and per broadcast ──────────────────

app.route("/api/broadcasts/:broadcastId", apiRoutes());
app.route("/api", apiRoutes());
app.all("/api/*", notFound);

export default {
  fetch: app.fetch,
  async scheduled(_controller, env, ctx) {
    ctx.waitUntil(
      reconcileAll(env).then(
        (r) =>
          console.log(
            `reconciled ${r.broadcasts} broadcasts: ${r.orphansDeleted} orphans deleted, ${r.dropped} vanished stages dropped`,
          ),
        (error: unknown) => console.error(`reconcile failed: ${(error as Error).message}`),
      ),
    );
  },
} satisfies ExportedHandler<Env>;
