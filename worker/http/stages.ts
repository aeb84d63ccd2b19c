import { createRoute, z } from "@hono/zod-openapi";
import { FeedSchema } from "../../protocol/api.ts";
import { ApiError, unwrap } from "../errors.ts";
import { requireAdmin } from "./auth.ts";
import { adminSecurity, failures, jsonBody, ok, router } from "./router.ts";
import { CrowdRequest, CrowdView, StageParam, StageTokenRequest, StageUpdateRequest, StageView } from "./schemas.ts";
import { PublisherInfo } from "./stats.ts";
import { stageFromParam } from "./viewer.ts";

/** Stage administration: what the autoscaler does, by hand. */
export const stages = router();

const admin = { security: adminSecurity, middleware: [requireAdmin], tags: ["stages"] };

stages.openapi(
  createRoute({
    ...admin,
    method: "get",
    path: "/stage/list",
    summary: "Every stage of the broadcast",
    responses: { ...ok(z.object({ stages: z.array(StageView), total: z.number().int() }), "stages"), ...failures(401) },
  }),
  async (c) => {
    const list = await c.env.BROADCAST.getByName(c.var.broadcastId).stages();
    return c.json({ success: true as const, data: { stages: list, total: list.length } }, 200);
  },
);

stages.openapi(
  createRoute({
    ...admin,
    method: "get",
    path: "/stage/master/info",
    summary: "The origin stage, where the broadcaster publishes",
    responses: { ...ok(StageView, "the origin"), ...failures(401, 404) },
  }),
  async (c) => {
    const broadcast = c.env.BROADCAST.getByName(c.var.broadcastId);
    const { originStageArn } = await broadcast.publisherInfo();
    const origin = originStageArn && unwrap(await broadcast.stage(originStageArn));
    if (!origin)
      throw new ApiError(
        "NOT_FOUND",
        404,
        "The broadcast has no origin stage yet: it is created with the first publisher token.",
      );
    return c.json({ success: true as const, data: origin }, 200);
  },
);

stages.openapi(
  createRoute({
    ...admin,
    method: "post",
    path: "/stage",
    summary: "Adds a stage now (the autoscaler may drain it later)",
    responses: { ...ok(StageView, "the new stage"), ...failures(401, 409, 502, 503) },
  }),
  async (c) =>
    c.json(
      { success: true as const, data: unwrap(await c.env.BROADCAST.getByName(c.var.broadcastId).createStage()) },
      200,
    ),
);

stages.openapi(
  createRoute({
    ...admin,
    method: "post",
    path: "/crowd",
    summary: "Announces a crowd: the pool is made ready for its arrival rate from now until it is due to be in",
    description:
      "A crowd that arrives at full speed (a million viewers in a minute is 16,000 joins a second from the first second) finds the stages there are and joins wait while more are created, four a second at most (each stage's seats are spread over shards, so no object takes more than its seats however fast they come). Announced, it finds its seats ready and no join waits. The stages it did not need are drained once it is due to be in. Announcing again replaces the announcement; viewers 1 and withinSeconds 1 with startsInSeconds 0 withdraws it in a second.",
    request: jsonBody(CrowdRequest),
    responses: { ...ok(CrowdView, "the announcement"), ...failures(400, 401) },
  }),
  async (c) =>
    c.json(
      {
        success: true as const,
        data: await c.env.BROADCAST.getByName(c.var.broadcastId).announceCrowd(c.req.valid("json")),
      },
      200,
    ),
);

stages.openapi(
  createRoute({
    ...admin,
    method: "post",
    path: "/stage/replication/start",
    summary: "Replicates the publisher into a stage (making it replica-fed)",
    request: jsonBody(StageTokenRequest),
    responses: { ...ok(StageView, "the stage"), ...failures(400, 401, 404, 409, 502, 503) },
  }),
  async (c) =>
    c.json(
      {
        success: true as const,
        data: unwrap(await c.env.BROADCAST.getByName(c.var.broadcastId).startReplication(c.req.valid("json"))),
      },
      200,
    ),
);

stages.openapi(
  createRoute({
    ...admin,
    method: "delete",
    path: "/stage/replication/stop",
    summary: "Stops replicating the publisher into a stage",
    request: jsonBody(StageTokenRequest),
    responses: { ...ok(StageView, "the stage"), ...failures(400, 401, 404, 502, 503) },
  }),
  async (c) =>
    c.json(
      {
        success: true as const,
        data: unwrap(await c.env.BROADCAST.getByName(c.var.broadcastId).stopReplication(c.req.valid("json"))),
      },
      200,
    ),
);

stages.openapi(
  createRoute({
    ...admin,
    method: "get",
    path: "/stage/replication/status/{stageArn}",
    summary: "Replication into one stage",
    request: { params: StageParam },
    responses: {
      ...ok(
        z.object({
          stageArn: z.string(),
          feed: FeedSchema,
          replication: z.string(),
          error: z.string().nullable(),
        }),
        "status",
      ),
      ...failures(401, 404),
    },
  }),
  async (c) => {
    const stageArn = await stageFromParam(c, c.req.valid("param").stageArn);
    const stage = unwrap(await c.env.BROADCAST.getByName(c.var.broadcastId).stage(stageArn));
    return c.json(
      {
        success: true as const,
        data: { stageArn, feed: stage.feed, replication: stage.replication, error: stage.replicationError },
      },
      200,
    );
  },
);

stages.openapi(
  createRoute({
    ...admin,
    method: "get",
    path: "/stage/replication/publisher-info",
    summary: "The participant that replication copies into every stage",
    responses: { ...ok(PublisherInfo, "the publisher"), ...failures(401) },
  }),
  async (c) =>
    c.json({ success: true as const, data: await c.env.BROADCAST.getByName(c.var.broadcastId).publisherInfo() }, 200),
);

stages.openapi(
  createRoute({
    ...admin,
    method: "get",
    path: "/stage/{stageArn}",
    summary: "One stage (ARN URL-encoded, or the stage id)",
    request: { params: StageParam },
    responses: { ...ok(StageView, "the stage"), ...failures(401, 404) },
  }),
  async (c) => {
    const stageArn = await stageFromParam(c, c.req.valid("param").stageArn);
    return c.json(
      { success: true as const, data: unwrap(await c.env.BROADCAST.getByName(c.var.broadcastId).stage(stageArn)) },
      200,
    );
  },
);

stages.openapi(
  createRoute({
    ...admin,
    method: "put",
    path: "/stage/{stageArn}",
    summary: "Drains a stage (its viewers move elsewhere) or takes it back into service",
    request: { params: StageParam, ...jsonBody(StageUpdateRequest) },
    responses: { ...ok(StageView, "the stage"), ...failures(400, 401, 404, 409) },
  }),
  async (c) => {
    const stageArn = await stageFromParam(c, c.req.valid("param").stageArn);
    const data = unwrap(
      await c.env.BROADCAST.getByName(c.var.broadcastId).updateStage({ stageArn, state: c.req.valid("json").state }),
    );
    return c.json({ success: true as const, data }, 200);
  },
);

stages.openapi(
  createRoute({
    ...admin,
    method: "delete",
    path: "/stage/{stageArn}",
    summary: "Deletes a stage now (not the origin while live); its viewers are sent to another stage",
    request: { params: StageParam },
    responses: {
      ...ok(z.object({ stageArn: z.string(), deleted: z.literal(true) }), "deleted"),
      ...failures(401, 404, 409, 502, 503),
    },
  }),
  async (c) => {
    const stageArn = await stageFromParam(c, c.req.valid("param").stageArn);
    unwrap(await c.env.BROADCAST.getByName(c.var.broadcastId).deleteStage({ stageArn }));
    return c.json({ success: true as const, data: { stageArn, deleted: true as const } }, 200);
  },
);
