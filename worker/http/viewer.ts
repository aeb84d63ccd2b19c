import { createRoute, z } from "@hono/zod-openapi";
import { ApiError } from "../errors.ts";
import { cachedRoutingTable } from "../join/cached-table.ts";
import { joinAsViewer, notThisParticipant } from "../join/join.ts";
import type { RoutingTable } from "../broadcast/contract.ts";
import { stageViewers, viewerShard, type ShardedStage } from "../shard/route.ts";
import { tokenDigest } from "../tokens/proof.ts";
import { requireAdmin, requireViewerAccess } from "./auth.ts";
import { requireBroadcast } from "./existence.ts";
import type { AppEnv } from "./context.ts";
import { rateLimit } from "./rate-limit.ts";
import { viewerToken } from "./tokens.ts";
import { adminSecurity, failures, jsonBody, ok, router } from "./router.ts";
import { ParticipantProof, Presence, Session, StageParam, UserId, Viewer, ViewerToken } from "./schemas.ts";
import type { Context } from "hono";

export const viewer = router();

/** Presence calls name a stage; only a stage of this broadcast reaches a shard (no objects made up by callers). */
async function knownStage(c: Context<AppEnv>, stageArn: string): Promise<ShardedStage> {
  const table = await cachedRoutingTable(c.env, c.var.broadcastId);
  const stage = table.stages.find((s) => s.arn === stageArn);
  if (!stage) throw new ApiError("NOT_FOUND", 404, `Stage ${stageArn} is not part of this broadcast.`);
  return stage;
}

/**
 * What a stage named by a viewer is to this broadcast: one of its stages now (a stage missing from
 * this isolate's copy of the table may be newer than it: read afresh once), one it had lately
 * (deleted while the viewer slept: move it), or none of its own (404, and no shard is touched).
 * With it, the stage's shard count: where the viewer's seat (or proof) is.
 */
async function stageStatus(
  c: Context<AppEnv>,
  stageArn: string,
): Promise<{ status: "serving" | "gone"; stage: ShardedStage }> {
  const find = (table: RoutingTable) => table.stages.find((s) => s.arn === stageArn);
  const serving =
    find(await cachedRoutingTable(c.env, c.var.broadcastId)) ??
    find(await cachedRoutingTable(c.env, c.var.broadcastId, 0));
  if (serving) return { status: "serving", stage: serving };
  const shards = await c.env.BROADCAST.getByName(c.var.broadcastId).hadStage(stageArn);
  if (shards > 0) return { status: "gone", stage: { arn: stageArn, shards } };
  throw new ApiError("NOT_FOUND", 404, `Stage ${stageArn} is not part of this broadcast.`);
}

/** A viewer of a deleted stage is moved only as the participant it was there: its shard still holds the proof. */
async function provenOnGoneStage(
  c: Context<AppEnv>,
  stage: ShardedStage,
  body: { stageArn: string; userId: string; participantId: string; token: string },
) {
  if (!(await viewerShard(c.env, stage, body.participantId).proves(await asParticipant(body))))
    throw notThisParticipant();
}

/** A stage named by an operator (the registry resolved it): its shards, from the table, or as it was when deleted. */
async function operatorStage(c: Context<AppEnv>, stageArn: string): Promise<ShardedStage> {
  const serving = (await cachedRoutingTable(c.env, c.var.broadcastId, 0)).stages.find((s) => s.arn === stageArn);
  if (serving) return serving;
  return { arn: stageArn, shards: Math.max(1, await c.env.BROADCAST.getByName(c.var.broadcastId).hadStage(stageArn)) };
}

/** A viewer's seat elsewhere, as POST /token/viewer gives it: on `prefer` when it has room, on any serving stage otherwise. */
async function moveViewer(
  c: Context<AppEnv>,
  userId: string,
  prefer?: string,
): Promise<ReturnType<typeof viewerToken>> {
  const join = (stageArn?: string) =>
    joinAsViewer(c.env, c.var.config, { broadcastId: c.var.broadcastId, userId, stageArn, moving: true }, (p) =>
      c.executionCtx.waitUntil(p),
    );
  let joined;
  try {
    joined = await join(prefer);
  } catch (error) {
    // That stage filled up or went meanwhile: any serving stage will do.
    if (!prefer || !(error instanceof ApiError) || !["STAGE_FULL", "NOT_FOUND"].includes(error.code)) throw error;
    joined = await join();
  }
  return viewerToken(joined, userId, c.var.config);
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
      "Keeps a viewer present (every 30 s; stale after 60 s), proven by its token; re-admits one that timed out, and says where to go (with a token) when its stage drains or is gone. Viewers on the viewer socket need not call it.",
    middleware: [requireViewerAccess, rateLimit("PRESENCE_LIMITER")] as const,
    request: jsonBody(ParticipantProof),
    responses: { ...ok(Presence, "present"), ...failures(400, 401, 403, 404, 429) },
  }),
  async (c) => {
    await requireBroadcast(c);
    const body = c.req.valid("json");
    const answer = (fields: {
      viewers: number;
      state: "ready" | "draining" | "closed";
      status: "present" | "readmitted" | "moved";
      migrateTo?: string;
      join?: ReturnType<typeof viewerToken>;
    }) =>
      c.json(
        {
          success: true as const,
          data: {
            userId: body.userId,
            stageArn: body.stageArn,
            ...fields,
            nextHeartbeatSeconds: c.var.config.presence.heartbeatIntervalMs / 1000,
          },
        },
        200,
      );
    const { status, stage } = await stageStatus(c, body.stageArn);
    if (status === "gone") {
      // The stage was deleted while the viewer slept (drained, or by the operator): a seat elsewhere.
      await provenOnGoneStage(c, stage, body);
      const join = await moveViewer(c, body.userId);
      return answer({ viewers: join.currentViewers, state: "closed", status: "moved", migrateTo: join.stageArn, join });
    }
    const reply = await viewerShard(c.env, stage, body.participantId).heartbeat(await asParticipant(body));
    if (reply.outcome === "unproven") throw notThisParticipant();
    if (reply.outcome === "unknown") {
      // Swept, and this stage has no seat for it now (full, draining): a seat elsewhere.
      const join = await moveViewer(c, body.userId, reply.migrateTo);
      return answer({ viewers: reply.viewers, state: reply.state, status: "moved", migrateTo: join.stageArn, join });
    }
    // A draining stage: the socket viewers were told at once; an HTTP-only viewer hears it here, with a
    // token for where to go the first time (an ignored one is swept there after the TTL; later answers repeat where).
    const join = reply.migrateTo && reply.firstNotice ? await moveViewer(c, body.userId, reply.migrateTo) : undefined;
    return answer({
      viewers: reply.viewers,
      state: reply.state,
      status: reply.outcome,
      ...(reply.migrateTo && { migrateTo: join?.stageArn ?? reply.migrateTo }),
      ...(join && { join }),
    });
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
    const stage = await knownStage(c, body.stageArn);
    const { outcome } = await viewerShard(c.env, stage, body.participantId).leave(await asParticipant(body));
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
    summary:
      "A viewer back after a network blip, as the participant its token names; on a stage that is gone or no longer seats it, a seat on one that serves",
    middleware: [requireViewerAccess, rateLimit("JOIN_LIMITER")] as const,
    request: jsonBody(ParticipantProof),
    responses: {
      ...ok(
        z.object({
          userId: z.string(),
          stageArn: z.string(),
          participantId: z.string(),
          viewers: z.number().int(),
          join: ViewerToken.optional().openapi({
            description:
              "Set when the stage named is gone or no longer seats this viewer: its seat elsewhere (stageArn and participantId are that seat's)",
          }),
        }),
        "back, on the same stage or (with join) on another",
      ),
      ...failures(400, 401, 403, 404, 429, 503),
    },
  }),
  async (c) => {
    await requireBroadcast(c);
    const body = c.req.valid("json");
    const moved = async () => {
      const join = await moveViewer(c, body.userId);
      const { userId } = body;
      const { stageArn, participantId, currentViewers: viewers } = join;
      return c.json({ success: true as const, data: { userId, stageArn, participantId, viewers, join } }, 200);
    };
    // A stage deleted lately, or one that no longer seats this viewer (draining, full): a seat on one that serves, not a 404.
    const { status, stage } = await stageStatus(c, body.stageArn);
    if (status === "gone") {
      await provenOnGoneStage(c, stage, body);
      return moved();
    }
    const admission = await viewerShard(c.env, stage, body.participantId).rejoin(await asParticipant(body));
    if (!admission.admitted) {
      if (admission.reason === "unproven") throw notThisParticipant();
      return moved();
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
    const viewers = await stageViewers(c.env, await operatorStage(c, stageArn));
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
      operatorStage(c, stageArn).then((stage) => stageViewers(c.env, stage)),
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
