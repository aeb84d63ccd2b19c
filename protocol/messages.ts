import { z } from "zod";
import { PublishStateSchema, type Feed, type PublicStats, type Stats } from "./api.ts";
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
  /** A broadcaster ticket (POST /api/broadcaster/ticket): the operator's full stats instead of the public ones. */
  ticket: z.string().max(256).optional(),
});
export type StatsClientMessage = z.infer<typeof StatsClientMessage>;

export type StatsServerMessage =
  | { type: "subscribed"; channel: "stats" }
  | { type: "unsubscribed"; channel: "stats" }
  | { type: "stats_update"; data: Stats | PublicStats }
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
  /** The first message of a socket opened without the admin key: a ticket, redeemed once. */
  z.object({ type: z.literal("auth"), ticket: z.string().max(256) }),
]);
export type BroadcasterClientMessage = z.infer<typeof BroadcasterClientMessage>;

export type BroadcasterServerMessage =
  | {
      type: "stage_created";
      data: { stageArn: string; feed: Feed; token?: string; participantId?: string; timestamp: string };
    }
  | { type: "stage_deleted"; data: { stageArn: string; timestamp: string } }
  | { type: "ended"; data: { timestamp: string } }
  | { type: "ready" }
  | { type: "error"; data: { message: string } };

// ── viewer socket, on the viewer's StageShard ─────────────────────────────

/** The viewer socket's first message: the participant proves itself with its token. */
export const ViewerHello = z.object({ type: z.literal("hello"), token: z.string().min(1).max(8192) });
export type ViewerHello = z.infer<typeof ViewerHello>;

/** Sent as plain text; answered `pong` by the runtime without waking the object. */
export const VIEWER_PING = "ping";
export const VIEWER_PONG = "pong";

export type ViewerServerMessage =
  | { type: "welcome"; data: { stageArn: string; viewers: number; live: boolean; state: "ready" | "draining" } }
  | { type: "viewers"; data: { count: number } }
  | { type: "live"; data: { live: boolean } }
  | { type: "migrate"; data: { stageArn?: string } }
  | { type: "ended" };

// ── close codes every socket uses (README.md, "WebSockets") ───────────────

export const CLOSE = {
  /** The first message was not the hello, auth or subscribe the socket expects. */
  PROTOCOL: 4400,
  /** No valid key, ticket or token: the ticket is unknown, expired or already used. */
  UNAUTHORIZED: 4401,
  /** The token does not belong to this participant. */
  FORBIDDEN: 4403,
  /** Nothing proved within the time allowed. */
  TIMEOUT: 4408,
  /** Another connection of the same participant took over. */
  REPLACED: 4409,
  /** Too many messages: the socket sent faster than the server accepts. */
  TOO_MANY_MESSAGES: 4429,
  /** A message larger than the socket accepts (RFC 6455 "message too big"). */
  TOO_BIG: 1009,
} as const;
