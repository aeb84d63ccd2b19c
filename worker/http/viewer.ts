import { createRoute, z } from "@hono/zod-openapi";
import { ApiError } from "../errors.ts";
import { cachedRoutingTable } from "../join/routing-cache.ts";
import { notThisParticipant } from "../join/join.ts";
import { tokenDigest } from "../tokens/proof.ts";
import { requireAdmin, requireViewerAccess } from "./auth.ts";
import { requireBroadcast } from "./existence.ts";
import type { AppEnv } from "./context.ts";
import { rateLimit } from "./rate-limit.ts";
import { adminSecurity, failures, jsonBody, ok, router } from "./router.ts";
import { ParticipantProof, Presence, Session, StageParam, UserId, Viewer } from "./schemas.ts";
import type { Context } from "hono";

export const viewer = router();

/** Presence calls name a stage; only a stage of this broadcast reaches a shard (no objects made up by callers). */
async function knownStage(c: Context<AppEnv>, stageArn: string): Promise<string> {
  const table = await cachedRoutingTable(c.env, c.var.broadcastId);
  if (!table.stages.some((s) => s.arn === stageArn))
    throw new ApiError("NOT_FOUND", 404, `Stage ${stageArn} is not part of this broadcast.`);
  return stageArn;
}

/** A stage in a path (ARN or id), resolved against the registry. */
export async function stageFromParam(c: Context<AppEnv>, value: string): Promise<string> {
  const arn = await c.env.BROADCAST.getByName(c.var.broadcastId).resolveStage(value);
  if (!arn) throw new ApiError("NOT_FOUND", 404, `Stage ${value} is not part of this broadcast.`);
  return arn;
}

/** The participant a presence call acts as, with the digest of the token that proves it. */
async function asParticipant(body: { userId: string; participantId: string; token: string }) {
  return { userId: body.userId, participantId: body.participantId, proof: await tokenDigest(body.token) };
}

viewer.openapi(
  createRoute({
    method: "post",
    path: "/viewer/heartbeat",
    tags: ["viewer"],
    summary:
      "Keeps a viewer present (every 30 s; stale after 60 s), proven by its token. Viewers on the viewer socket need not call it.",
    middleware: [requireViewerAccess, rateLimit("PRESENCE_LIMITER")] as const,
    request: jsonBody(ParticipantProof),
    responses: { ...ok(Presence, "present"), ...failures(400, 401, 403, 404, 429) },
  }),
  async (c) => {
    await requireBroadcast(c);
    const body = c.req.valid("json");
    const reply = await c.env.STAGE_SHARD.getByName(await knownStage(c, body.stageArn)).heartbeat(
      await asParticipant(body),
    );
    if (reply.outcome === "unproven") throw notThisParticipant();
    if (reply.outcome === "unknown")
      throw new ApiError(
        "NOT_FOUND",
        404,
        "This viewer is not on that stage (timed out?); rejoin or ask for a new token.",
      );
    return c.json(
      {
        success: true as const,
        data: {
          userId: body.userId,
          stageArn: body.stageArn,
          viewers: reply.viewers,
          state: reply.state,
          ...(reply.migrateTo && { migrateTo: reply.migrateTo }),
          nextHeartbeatSeconds: c.var.config.presence.heartbeatIntervalMs / 1000,
        },
      },
      200,
    );
  },
);

viewer.openapi(
  createRoute({
    method: "post",
    path: "/viewer/leave",
    tags: ["viewer"],
    summary: "The viewer is gone: that one participant (proven by its token) is removed at once",
    middleware: [requireViewerAccess, rateLimit("PRESENCE_LIMITER")] as const,
    request: jsonBody(ParticipantProof),
    responses: {
      ...ok(z.object({ userId: z.string(), stageArn: z.string(), removed: z.number().int() }), "removed"),
      ...failures(400, 401, 403, 404, 429),
    },
  }),
  async (c) => {
    await requireBroadcast(c);
    const body = c.req.valid("json");
    const { outcome } = await c.env.STAGE_SHARD.getByName(await knownStage(c, body.stageArn)).leave(
      await asParticipant(body),
    );
    if (outcome === "unproven") throw notThisParticipant();
    return c.json(
      {
        success: true as const,
        data: { userId: body.userId, stageArn: body.stageArn, removed: outcome === "left" ? 1 : 0 },
      },
      200,
    );
  },
);

viewer.openapi(
  createRoute({
    method: "post",
    path: "/viewer/rejoin",
    tags: ["viewer"],
    summary: "A viewer back after a network blip, as the participant its token names",
    middleware: [requireViewerAccess, rateLimit("JOIN_LIMITER")] as const,
    request: jsonBody(ParticipantProof),
    responses: {
      ...ok(
        z.object({ userId: z.string(), stageArn: z.string(), participantId: z.string(), viewers: z.number().int() }),
        "back",
      ),
      ...failures(400, 401, 403, 404, 429, 503),
    },
  }),
  async (c) => {
    await requireBroadcast(c);
    const body = c.req.valid("json");
    const admission = await c.env.STAGE_SHARD.getByName(await knownStage(c, body.stageArn)).rejoin(
      await asParticipant(body),
    );
    if (!admission.admitted) {
      if (admission.reason === "unproven") throw notThisParticipant();
      if (admission.reason === "full")
        throw new ApiError("STAGE_FULL", 503, "That stage is full; ask for a new token.", { retryAfter: 5 });
      throw new ApiError("NOT_FOUND", 404, "That stage no longer takes viewers; ask for a new token.");
    }
    const { userId, stageArn, participantId } = body;
    return c.json(
      { success: true as const, data: { userId, stageArn, participantId, viewers: admission.viewers } },
      200,
    );
  },
);

viewer.openapi(
  createRoute({
    method: "get",
    path: "/viewer/list/{stageArn}",
    tags: ["viewer"],
    summary: "The viewers on a stage (the ARN URL-encoded, or the stage id)",
    security: adminSecurity,
    middleware: [requireAdmin] as const,
    request: { params: StageParam },
    responses: {
      ...ok(z.object({ stageArn: z.string(), viewers: z.array(Viewer), total: z.number().int() }), "viewers"),
      ...failures(401, 404),
    },
  }),
  async (c) => {
    const stageArn = await stageFromParam(c, c.req.valid("param").stageArn);
    const viewers = await c.env.STAGE_SHARD.getByName(stageArn).viewers();
    return c.json({ success: true as const, data: { stageArn, viewers, total: viewers.length } }, 200);
  },
);

viewer.openapi(
  createRoute({
    method: "get",
    path: "/viewer/duration",
    tags: ["viewer"],
    summary: "How long a viewer has watched on a stage: ended sessions plus the current one",
    security: adminSecurity,
    middleware: [requireAdmin] as const,
    request: { query: z.object({ userId: UserId, stageArn: z.string().min(1) }) },
    responses: {
      ...ok(
        z.object({
          userId: z.string(),
          stageArn: z.string(),
          watching: z.boolean(),
          currentSessionSeconds: z.number().int(),
          totalSeconds: z.number().int(),
        }),
        "durations",
      ),
      ...failures(400, 401, 404),
    },
  }),
  async (c) => {
    const { userId, stageArn: given } = c.req.valid("query");
    const stageArn = await stageFromParam(c, given);
    const [sessions, history] = await Promise.all([
      c.env.STAGE_SHARD.getByName(stageArn).viewers(),
      c.env.BROADCAST.getByName(c.var.broadcastId).history(userId),
    ]);
    const now = Date.now();
    const current = sessions
      .filter((s) => s.userId === userId)
      .reduce((sum, s) => sum + (now - Date.parse(s.joinedAt)) / 1000, 0);
    const past = history.filter((h) => h.stageArn === stageArn).reduce((sum, h) => sum + h.durationSeconds, 0);
    return c.json(
      {
        success: true as const,
        data: {
          userId,
          stageArn,
          watching: current > 0,
          currentSessionSeconds: Math.round(current),
          totalSeconds: Math.round(current + past),
        },
      },
      200,
    );
  },
);

viewer.openapi(
  createRoute({
    method: "get",
    path: "/viewer/history/{userId}",
    tags: ["viewer"],
    summary: "A viewer's ended viewing sessions in this broadcast, newest first",
    security: adminSecurity,
    middleware: [requireAdmin] as const,
    request: { params: z.object({ userId: UserId.openapi({ param: { name: "userId", in: "path" } }) }) },
    responses: {
      ...ok(z.object({ userId: z.string(), sessions: z.array(Session), totalSeconds: z.number().int() }), "history"),
      ...failures(400, 401),
    },
  }),
  async (c) => {
    const { userId } = c.req.valid("param");
    const sessions = await c.env.BROADCAST.getByName(c.var.broadcastId).history(userId);
    return c.json(
      {
        success: true as const,
        data: { userId, sessions, totalSeconds: sessions.reduce((s, x) => s + x.durationSeconds, 0) },
      },
      200,
    );
  },
);

viewer.openapi(
  createRoute({
    method: "get",
    path: "/viewer/stats/{stageArn}",
    tags: ["viewer"],
    summary: "Viewing statistics of a stage over the last `days` days",
    security: adminSecurity,
    middleware: [requireAdmin] as const,
    request: { params: StageParam, query: z.object({ days: z.coerce.number().int().min(1).max(90).default(7) }) },
    responses: {
      ...ok(
        z.object({
          stageArn: z.string(),
          days: z.number().int(),
          currentViewers: z.number().int(),
          sessions: z.number().int(),
          uniqueViewers: z.number().int(),
          averageWatchSeconds: z.number().int(),
          daily: z.array(
            z.object({
              day: z.string(),
              sessions: z.number().int(),
              uniqueViewers: z.number().int(),
              watchSeconds: z.number().int(),
            }),
          ),
        }),
        "statistics",
      ),
      ...failures(400, 401, 404),
    },
  }),
  async (c) => {
    const stageArn = await stageFromParam(c, c.req.valid("param").stageArn);
    const data = await c.env.BROADCAST.getByName(c.var.broadcastId).stageStats({
      stageArn,
      days: c.req.valid("query").days,
    });
    return c.json({ success: true as const, data }, 200);
  },
);
