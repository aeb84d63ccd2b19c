import { createRoute, z } from "@hono/zod-openapi";
import { STAGE_ARN_PATTERN } from "../../protocol/ids.ts";
import { loadConfig } from "../config.ts";
import { ApiError, unwrap } from "../errors.ts";
import { keyMatches } from "./auth.ts";
import { failures, jsonBody, ok, router } from "./router.ts";

/**
 * `POST /api/ivs/events`: IVS Real-Time's participant events, delivered by an EventBridge rule
 * through an API destination (README.md, "Publish state from IVS"). Its connection sends
 * IVS_EVENTS_KEY in `x-api-key`. Only "IVS Stage Update" events about a broadcast's origin
 * matter: the publisher published, unpublished, or failed to. Everything else is acknowledged
 * and ignored, so EventBridge does not retry it.
 */
export const ivsEvents = router();

const PUBLISH_EVENTS = ["Participant Published", "Participant Unpublished", "Participant Publish Error"] as const;

/** An EventBridge event, as AWS documents IVS's (RealTimeUserGuide, "Using Amazon EventBridge"). */
const EventBridgeEvent = z
  .object({
    id: z.string().min(1).max(128),
    "detail-type": z.string().max(128),
    source: z.string().max(128),
    time: z.iso.datetime(),
    resources: z.array(z.string().max(256)).max(16),
    detail: z.looseObject({
      event_name: z.string().max(128).optional(),
      participant_id: z.string().max(64).optional(),
      session_id: z.string().max(64).optional(),
    }),
  })
  .openapi("IvsEvent");

const Outcome = z.object({
  outcome: z.enum(["applied", "duplicate", "stale", "ambiguous", "not_the_publisher", "ignored"]),
});

ivsEvents.openapi(
  createRoute({
    method: "post",
    path: "/ivs/events",
    tags: ["deployment"],
    summary:
      "IVS participant events from an EventBridge API destination (x-api-key: IVS_EVENTS_KEY): the publisher's state within seconds. Idempotent, out-of-order safe.",
    request: jsonBody(EventBridgeEvent),
    responses: { ...ok(Outcome, "taken (applied, or why not)"), ...failures(400, 401, 404, 500) },
  }),
  async (c) => {
    const config = loadConfig(c.env);
    if (!config.ivsEventsKey)
      throw new ApiError("NOT_FOUND", 404, "IVS events are not taken here: set IVS_EVENTS_KEY to enable this route.");
    if (!(await keyMatches(c.req.header("x-api-key"), config.ivsEventsKey)))
      throw new ApiError(
        "UNAUTHORIZED",
        401,
        "IVS events need the events key (IVS_EVENTS_KEY) in the x-api-key header.",
      );
    const event = c.req.valid("json");
    const name = PUBLISH_EVENTS.find((n) => n === event.detail.event_name);
    const stageArn = event.resources.find((r) => STAGE_ARN_PATTERN.test(r));
    const participantId = event.detail.participant_id;
    const ignored = () => c.json({ success: true as const, data: { outcome: "ignored" as const } }, 200);
    if (
      event.source !== "aws.ivs" ||
      event["detail-type"] !== "IVS Stage Update" ||
      !name ||
      !stageArn ||
      !participantId
    )
      return ignored();
    const broadcastId = await c.env.DIRECTORY.getByName("directory").originOf(stageArn);
    if (!broadcastId) return ignored();
    const outcome = unwrap(
      await c.env.BROADCAST.getByName(broadcastId).ivsEvent({
        id: event.id,
        at: Date.parse(event.time),
        stageArn,
        participantId,
        name,
      }),
    );
    return c.json({ success: true as const, data: { outcome } }, 200);
  },
);
