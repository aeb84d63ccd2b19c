import { createRoute, z } from "@hono/zod-openapi";
import { isServing } from "../../protocol/api.ts";
import { requireAdmin } from "./auth.ts";
import { unwrap } from "../errors.ts";
import { adminSecurity, failures, jsonBody, ok, router, secondsUntil } from "./router.ts";
import { BroadcasterStage, PublishStateRequest, StageToken, StageTokenRequest } from "./schemas.ts";

export const broadcaster = router();

broadcaster.openapi(
  createRoute({
    method: "get",
    path: "/broadcaster/stages",
    tags: ["broadcaster"],
    summary: "Every stage with its viewers and feed; direct-fed stages (and the origin) come with a publish token",
    security: adminSecurity,
    middleware: [requireAdmin] as const,
    responses: {
      ...ok(z.object({ stages: z.array(BroadcasterStage), total: z.number().int() }), "the stages"),
      ...failures(401, 502, 503),
    },
  }),
  async (c) => {
    const broadcast = c.env.BROADCAST.getByName(c.var.broadcastId);
    const [views, publishTokens] = await Promise.all([broadcast.stages(), broadcast.publisherTokens()]);
    const tokenOf = new Map(unwrap(publishTokens).map((t) => [t.stageArn, t.token]));
    const stages = views.filter(isServing).map((s) => ({
      stageArn: s.stageArn,
      stageId: s.stageId,
      token: tokenOf.get(s.stageArn) ?? null,
      viewerCount: s.viewers,
      feed: s.feed,
    }));
    return c.json({ success: true as const, data: { stages, total: stages.length } }, 200);
  },
);

broadcaster.openapi(
  createRoute({
    method: "post",
    path: "/broadcaster/stage-token",
    tags: ["broadcaster"],
    summary: "A publish token for one stage of the broadcast",
    security: adminSecurity,
    middleware: [requireAdmin] as const,
    request: jsonBody(StageTokenRequest),
    responses: { ...ok(StageToken, "the token"), ...failures(400, 401, 404, 502, 503) },
  }),
  async (c) => {
    const { stageArn, participantId } = c.req.valid("json");
    const token = unwrap(await c.env.BROADCAST.getByName(c.var.broadcastId).stageToken({ stageArn, participantId }));
    return c.json(
      {
        success: true as const,
        data: {
          token: token.token,
          participantId: token.participantId,
          expiresIn: secondsUntil(token.expiresAt),
          expiresAt: token.expiresAt,
        },
      },
      200,
    );
  },
);

broadcaster.openapi(
  createRoute({
    method: "post",
    path: "/broadcaster/ticket",
    tags: ["broadcaster"],
    summary:
      'A ticket for a socket with the operator\'s rights, so the admin key never goes in a URL: good for 30 s, once. Send it as the socket\'s first message: {"type":"auth","ticket"} on /ws?type=broadcaster, or in the stats subscribe message on /ws',
    security: adminSecurity,
    middleware: [requireAdmin] as const,
    responses: { ...ok(z.object({ ticket: z.string(), expiresIn: z.number().int() }), "the ticket"), ...failures(401) },
  }),
  async (c) =>
    c.json({ success: true as const, data: await c.env.BROADCAST.getByName(c.var.broadcastId).issueTicket() }, 200),
);

broadcaster.openapi(
  createRoute({
    method: "get",
    path: "/broadcaster/share",
    tags: ["broadcaster"],
    summary:
      "What a share link must carry for viewers to watch: nothing on an open deployment; the viewer key (in the link's fragment, never sent to a server in a URL) with VIEWER_ACCESS=key",
    security: adminSecurity,
    middleware: [requireAdmin] as const,
    responses: {
      ...ok(z.object({ viewerAccess: z.enum(["open", "key"]), viewerKey: z.string().optional() }), "what viewers need"),
      ...failures(401),
    },
  }),
  (c) => {
    const { viewerAccess, viewerKey } = c.var.config;
    return c.json(
      { success: true as const, data: { viewerAccess, ...(viewerAccess === "key" && viewerKey && { viewerKey }) } },
      200,
    );
  },
);

broadcaster.openapi(
  createRoute({
    method: "post",
    path: "/broadcaster/publish-state",
    tags: ["broadcaster"],
    summary: "The publisher's state on a stage, for encoders that do not hold the broadcaster socket (OBS over WHIP)",
    security: adminSecurity,
    middleware: [requireAdmin] as const,
    request: jsonBody(PublishStateRequest),
    responses: { ...ok(z.object({ stageArn: z.string(), state: z.string() }), "recorded"), ...failures(400, 401, 404) },
  }),
  async (c) => {
    const body = c.req.valid("json");
    unwrap(await c.env.BROADCAST.getByName(c.var.broadcastId).setPublishState(body));
    return c.json({ success: true as const, data: body }, 200);
  },
);
