import { createRoute, z } from "@hono/zod-openapi";
import { EventSchema, PublisherStatsSchema, isServing } from "../../protocol/api.ts";
import { requireAdmin } from "./auth.ts";
import { adminSecurity, failures, ok, router } from "./router.ts";
import { Stats, StageView } from "./schemas.ts";

export const stats = router();

const route = (path: string, summary: string, schema: z.ZodType) =>
  createRoute({
    method: "get",
    path,
    tags: ["stats"],
    summary,
    security: adminSecurity,
    middleware: [requireAdmin] as const,
    responses: { ...ok(schema, summary), ...failures(401) },
  });

stats.openapi(route("/stats", "Totals: viewers, stages, whether the publisher is live", Stats), async (c) =>
  c.json({ success: true as const, data: await c.env.BROADCAST.getByName(c.var.broadcastId).stats() }, 200),
);

stats.openapi(
  route(
    "/stats/viewers",
    "Viewers in total and per stage",
    z.object({
      totalViewers: z.number().int(),
      byStage: z.array(z.object({ stageArn: z.string(), viewers: z.number().int(), capacity: z.number().int() })),
    }),
  ),
  async (c) => {
    const s = await c.env.BROADCAST.getByName(c.var.broadcastId).stats();
    return c.json(
      {
        success: true as const,
        data: {
          totalViewers: s.totalViewers,
          byStage: s.stages.map((x) => ({ stageArn: x.stageArn, viewers: x.viewers, capacity: x.capacity })),
        },
      },
      200,
    );
  },
);

stats.openapi(
  route(
    "/stats/stages",
    "The stages of the broadcast",
    z.object({ activeStages: z.number().int(), stages: z.array(StageView) }),
  ),
  async (c) => {
    const broadcast = c.env.BROADCAST.getByName(c.var.broadcastId);
    const stages = await broadcast.stages();
    return c.json(
      {
        success: true as const,
        data: { activeStages: stages.filter(isServing).length, stages },
      },
      200,
    );
  },
);

const PublisherInfo = z.object({
  publisher: PublisherStatsSchema.nullable(),
  originStageArn: z.string().nullable(),
  isPublisherLive: z.boolean(),
});

stats.openapi(route("/stats/publisher", "The publisher's session and state", PublisherInfo), async (c) =>
  c.json({ success: true as const, data: await c.env.BROADCAST.getByName(c.var.broadcastId).publisherInfo() }, 200),
);

const Snapshot = z.object({
  at: z.string(),
  totalViewers: z.number().int(),
  activeStages: z.number().int(),
  publisherLive: z.boolean(),
});

stats.openapi(
  createRoute({
    method: "get",
    path: "/stats/snapshots",
    tags: ["stats"],
    summary: "Snapshots taken every SNAPSHOT_INTERVAL_MINUTES while live, for charts",
    security: adminSecurity,
    middleware: [requireAdmin] as const,
    request: {
      query: z.object({
        hours: z.coerce
          .number()
          .min(1)
          .max(24 * 90)
          .default(24),
      }),
    },
    responses: { ...ok(z.object({ snapshots: z.array(Snapshot) }), "snapshots"), ...failures(400, 401) },
  }),
  async (c) => {
    const { hours } = c.req.valid("query");
    return c.json(
      {
        success: true as const,
        data: { snapshots: await c.env.BROADCAST.getByName(c.var.broadcastId).snapshots({ hours }) },
      },
      200,
    );
  },
);

stats.openapi(
  createRoute({
    method: "get",
    path: "/events",
    tags: ["stats"],
    summary: "The broadcast's event log, newest first",
    security: adminSecurity,
    middleware: [requireAdmin] as const,
    request: { query: z.object({ limit: z.coerce.number().int().min(1).max(500).default(100) }) },
    responses: {
      ...ok(
        z.object({
          events: z.array(EventSchema),
        }),
        "events",
      ),
      ...failures(400, 401),
    },
  }),
  async (c) => {
    const { limit } = c.req.valid("query");
    return c.json(
      {
        success: true as const,
        data: { events: await c.env.BROADCAST.getByName(c.var.broadcastId).events({ limit }) },
      },
      200,
    );
  },
);

export { PublisherInfo };
