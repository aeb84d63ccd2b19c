import { createRoute, z } from "@hono/zod-openapi";
import { FeedSchema } from "../../protocol/api.ts";
import type { Config } from "../config.ts";
import { unwrap } from "../errors.ts";
import { joinAsViewer, renewViewerToken, type Joined } from "../join/join.ts";
import { requireAdmin, requireViewerAccess } from "./auth.ts";
import { rateLimit } from "./rate-limit.ts";
import { adminSecurity, failures, jsonBody, ok, router, secondsUntil } from "./router.ts";
import { tokenDigest } from "../tokens/proof.ts";
import { requireBroadcast } from "./existence.ts";
import { ParticipantProof, PublisherToken, PublisherTokenRequest, ViewerToken, ViewerTokenRequest } from "./schemas.ts";

export const tokens = router();

/** A viewer's token answer, for a join, a renewal and a move alike. */
export const viewerToken = (joined: Joined, userId: string, config: Config) => ({
  token: joined.token.token,
  participantId: joined.token.participantId,
  stageArn: joined.stageArn,
  userId,
  capabilities: joined.token.capabilities,
  expiresIn: secondsUntil(joined.token.expiresAt),
  expiresAt: joined.token.expiresAt,
  currentViewers: joined.viewers,
  heartbeatIntervalSeconds: config.presence.heartbeatIntervalMs / 1000,
});

tokens.openapi(
  createRoute({
    method: "post",
    path: "/token/viewer",
    tags: ["tokens"],
    summary: "A viewer joins: a stage is chosen by load (or the one given) and a SUBSCRIBE token minted",
    middleware: [requireViewerAccess, rateLimit("JOIN_LIMITER")] as const,
    request: jsonBody(ViewerTokenRequest),
    responses: { ...ok(ViewerToken, "the viewer's token and stage"), ...failures(400, 401, 404, 429, 502, 503) },
  }),
  async (c) => {
    await requireBroadcast(c);
    const { userId, stageArn } = c.req.valid("json");
    const joined = await joinAsViewer(c.env, c.var.config, { broadcastId: c.var.broadcastId, userId, stageArn }, (p) =>
      c.executionCtx.waitUntil(p),
    );
    return c.json({ success: true as const, data: viewerToken(joined, userId, c.var.config) }, 200);
  },
);

tokens.openapi(
  createRoute({
    method: "post",
    path: "/token/viewer/renew",
    tags: ["tokens"],
    summary:
      "A viewer's token before it expires, proven by the current one: the same participant when tokens are self-signed (swap it in with exchangeToken), a new one on the same stage otherwise (rejoin)",
    middleware: [requireViewerAccess, rateLimit("JOIN_LIMITER")] as const,
    request: jsonBody(ParticipantProof),
    responses: { ...ok(ViewerToken, "the renewed token"), ...failures(400, 401, 403, 404, 429, 502, 503) },
  }),
  async (c) => {
    await requireBroadcast(c);
    const { userId, stageArn, participantId, token } = c.req.valid("json");
    const joined = await renewViewerToken(
      c.env,
      c.var.config,
      { broadcastId: c.var.broadcastId, userId, stageArn, participantId, proof: await tokenDigest(token) },
      (p) => c.executionCtx.waitUntil(p),
    );
    return c.json({ success: true as const, data: viewerToken(joined, userId, c.var.config) }, 200);
  },
);

tokens.openapi(
  createRoute({
    method: "post",
    path: "/token/publisher",
    tags: ["tokens"],
    summary: "The broadcaster's token for the origin stage (created on first use); starts the broadcast",
    security: adminSecurity,
    middleware: [requireAdmin] as const,
    request: jsonBody(PublisherTokenRequest),
    responses: { ...ok(PublisherToken, "the publisher token"), ...failures(400, 401, 409, 502, 503) },
  }),
  async (c) => {
    const { userId, participantId, encoder } = c.req.valid("json");
    const grant = unwrap(
      await c.env.BROADCAST.getByName(c.var.broadcastId).publisherToken({ userId, participantId, encoder }),
    );
    return c.json(
      {
        success: true as const,
        data: {
          token: grant.token,
          participantId: grant.participantId,
          stageArn: grant.stageArn,
          userId,
          capabilities: grant.capabilities,
          expiresIn: secondsUntil(grant.expiresAt),
          expiresAt: grant.expiresAt,
          whipEndpoint: grant.whipEndpoint,
        },
      },
      200,
    );
  },
);

tokens.openapi(
  createRoute({
    method: "post",
    path: "/token/publisher-all",
    tags: ["tokens"],
    summary: "Publish tokens for every stage the studio publishes to itself: the origin and direct-fed stages",
    security: adminSecurity,
    middleware: [requireAdmin] as const,
    responses: {
      ...ok(
        z.object({
          tokens: z.array(
            z.object({
              stageArn: z.string(),
              token: z.string(),
              participantId: z.string(),
              feed: FeedSchema,
            }),
          ),
        }),
        "one token per stage",
      ),
      ...failures(401, 502, 503),
    },
  }),
  async (c) => {
    const list = unwrap(await c.env.BROADCAST.getByName(c.var.broadcastId).publisherTokens());
    return c.json({ success: true as const, data: { tokens: list } }, 200);
  },
);
