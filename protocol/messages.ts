import { z } from "zod";
import { PublishStateSchema, type Feed, type Stats } from "./api.ts";
import { STAGE_ARN_PATTERN } from "./ids.ts";

/**
 * Every WebSocket message, defined once for the Worker, the Durable Objects
 * and the pages (README.md, "WebSockets"). What clients send is a zod schema,
 * checked at the socket; what the server sends is a type.
 */

export type { Feed, PublishState, StageState } from "./api.ts";

const StageArn = z.string().regex(STAGE_ARN_PATTERN);

// ── stats channel: GET /ws (integrator contract) ──────────────────────────

export const StatsClientMessage = z.object({
  action: z.enum(["subscribe", "unsubscribe"]),
  channel: z.literal("stats"),
});
export type StatsClientMessage = z.infer<typeof StatsClientMessage>;

export type StatsServerMessage =
  | { type: "subscribed"; channel: "stats" }
  | { type: "unsubscribed"; channel: "stats" }
  | { type: "stats_update"; data: Stats }
  | { type: "error"; data: { message: string } };

// ── broadcaster channel: GET /ws?type=broadcaster ─────────────────────────

export const BroadcasterClientMessage = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("publish_state"),
    data: z.object({
      stageArn: StageArn,
      state: PublishStateSchema,
      participantId: z.string().max(64).optional(),
    }),
  }),
  z.object({ type: z.literal("end") }),
]);
export type BroadcasterClientMessage = z.infer<typeof BroadcasterClientMessage>;

export type BroadcasterServerMessage =
  | {
      type: "stage_created";
      data: { stageArn: string; feed: Feed; token?: string; participantId?: string; timestamp: string };
    }
  | { type: "stage_deleted"; data: { stageArn: string; timestamp: string } }
  | { type: "ended"; data: { timestamp: string } }
  | { type: "error"; data: { message: string } };

// ── viewer socket, on the viewer's StageShard ─────────────────────────────

/** Sent as plain text; answered `pong` by the runtime without waking the object. */
export const VIEWER_PING = "ping";
export const VIEWER_PONG = "pong";

export type ViewerServerMessage =
  | { type: "welcome"; data: { stageArn: string; viewers: number; live: boolean; state: "ready" | "draining" } }
  | { type: "viewers"; data: { count: number } }
  | { type: "live"; data: { live: boolean } }
  | { type: "migrate"; data: { stageArn?: string } }
  | { type: "ended" };
