import { z } from "zod";

/**
 * The HTTP API's wire shapes (docs/design.md, "HTTP API"), shared by the
 * Worker and the pages: zod schemas where the API answers with them (the
 * routes and the OpenAPI document use the same objects), types inferred from
 * them.
 */

/** Every `error.code` the API answers with; README.md's error table says when. */
export const ErrorCodeSchema = z.enum([
  "VALIDATION_ERROR",
  "UNAUTHORIZED",
  "FORBIDDEN",
  "NOT_FOUND",
  "CONFLICT",
  "RATE_LIMITED",
  "STAGE_FULL",
  "TOKEN_GENERATION_FAILED",
  "INTERNAL_ERROR",
]);
export type ErrorCode = z.infer<typeof ErrorCodeSchema>;

export interface SuccessEnvelope<T> {
  success: true;
  data: T;
}

export interface ErrorEnvelope {
  success: false;
  error: { code: ErrorCode; message: string; details?: Record<string, unknown> };
}

export type Envelope<T> = SuccessEnvelope<T> | ErrorEnvelope;

/** `GET /health`, `GET /api/health`. */
export const HealthSchema = z.object({
  status: z.literal("ok"),
  region: z.string(),
  tokens: z.enum(["self-signed", "api"]),
  mode: z.enum(["replica", "direct"]),
  time: z.string(),
});
export type Health = z.infer<typeof HealthSchema>;

export const FeedSchema = z.enum(["replica", "direct"]);
export const StageStateSchema = z.enum(["creating", "ready", "draining", "deleting"]);
export const PublishStateSchema = z.enum(["connecting", "publishing", "stopped", "failed"]);
const ReplicationSchema = z.enum(["none", "pending", "active", "failed"]);
export type Feed = z.infer<typeof FeedSchema>;
export type StageState = z.infer<typeof StageStateSchema>;
export type PublishState = z.infer<typeof PublishStateSchema>;

/** A stage that carries the broadcast: viewers watch it and the publisher feeds it (not being created or deleted). */
export const isServing = (stage: { state: StageState }): boolean =>
  stage.state === "ready" || stage.state === "draining";

/** One stage of a broadcast, as the stage routes answer it. */
export const StageSchema = z.object({
  stageArn: z.string(),
  stageId: z.string(),
  role: z.enum(["origin", "edge"]),
  state: StageStateSchema,
  feed: FeedSchema,
  viewers: z.number().int(),
  capacity: z.number().int(),
  publishState: PublishStateSchema.nullable(),
  replication: ReplicationSchema,
  replicationError: z.string().nullable(),
  endpoints: z.object({ events: z.string(), whip: z.string() }),
  createdAt: z.string(),
  drainingSince: z.string().nullable(),
});
export type Stage = z.infer<typeof StageSchema>;

export const PublisherStatsSchema = z.object({
  participantId: z.string(),
  userId: z.string(),
  stageArn: z.string(),
  state: z.enum(["idle", "connecting", "publishing", "stopped", "failed"]),
  since: z.string(),
  expiresAt: z.string(),
});
export type PublisherStats = z.infer<typeof PublisherStatsSchema>;

/**
 * What the broadcast has cost so far: IVS bills every participant connected to a stage by the
 * hour (viewers, the publisher in each stage it publishes into, and each replica of it).
 */
export const UsageSchema = z.object({
  participantHours: z.object({
    viewers: z.number(),
    publisher: z.number(),
    replicas: z.number(),
    total: z.number(),
  }),
  /** PRICE_PER_PARTICIPANT_HOUR, USD; null when not configured. */
  pricePerParticipantHour: z.number().nullable(),
  /** USD; null without a price. */
  estimatedCost: z.number().nullable(),
  stages: z.object({ now: z.number().int(), peak: z.number().int() }),
});
export type Usage = z.infer<typeof UsageSchema>;

/** What an operator must see: the things that cost money or capacity until someone acts or IVS recovers. */
export const WarningSchema = z.object({
  code: z.enum(["STAGE_QUOTA", "IVS_THROTTLING", "STAGE_CREATE_FAILING", "DELETE_FAILING", "UNKNOWN_STAGES"]),
  message: z.string(),
  since: z.string().nullable(),
});
export type Warning = z.infer<typeof WarningSchema>;

/** `GET /api/stats` and the stats socket's `stats_update` (the integrator contract's fields first). */
export const StatsSchema = z.object({
  totalViewers: z.number().int(),
  activeStages: z.number().int(),
  isPublisherLive: z.boolean(),
  publisher: PublisherStatsSchema.nullable(),
  stages: z.array(StageSchema.omit({ replicationError: true, endpoints: true, drainingSince: true })),
  startedAt: z.string().nullable(),
  endedAt: z.string().nullable(),
  broadcastId: z.string(),
  status: z.enum(["idle", "live", "ended"]),
  usage: UsageSchema,
  warnings: z.array(WarningSchema),
});
export type Stats = z.infer<typeof StatsSchema>;

/**
 * What the open stats channel (`GET /ws` without a ticket) pushes: what a viewer page or an
 * embed shows, nothing more. No participant or user id, no stages, no replication state.
 */
export const PublicStatsSchema = StatsSchema.pick({
  broadcastId: true,
  status: true,
  isPublisherLive: true,
  totalViewers: true,
  activeStages: true,
  startedAt: true,
  endedAt: true,
});
export type PublicStats = z.infer<typeof PublicStatsSchema>;
export const publicStats = (stats: Stats): PublicStats => PublicStatsSchema.parse(stats);

/** `GET /api/broadcasts`: recent broadcasts, live first, for the landing page. */
export const BroadcastEntrySchema = z.object({
  broadcastId: z.string(),
  status: z.enum(["live", "ended"]),
  startedAt: z.string(),
  endedAt: z.string().nullable(),
});
export type BroadcastEntry = z.infer<typeof BroadcastEntrySchema>;

/** What the broadcast's event log records (`GET /api/events`), one name per kind of event. */
export const EventTypeSchema = z.enum([
  "started",
  "ended",
  "idle_timeout",
  "publisher_token",
  "publish_state",
  "publishing_seen_at_ivs",
  "stage_created",
  "stage_create_failed",
  "stage_create_refused",
  "stage_draining",
  "stage_revived",
  "stage_deleted",
  "stage_delete_failed",
  "stage_vanished",
  "orphan_found",
  "orphan_deleted",
  "placeholder_resolved",
  "history_expired",
  "replication_started",
  "replication_stopped",
  "replication_failed",
  "crowd_announced",
]);
export type EventType = z.infer<typeof EventTypeSchema>;
/** Event details: flat and JSON-safe, so they cross RPC and the API as they are. */
export type EventDetail = Record<string, string | number | boolean | null>;
export const EventSchema = z.object({
  at: z.string(),
  type: EventTypeSchema,
  detail: z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()])),
});
export type BroadcastEvent = z.infer<typeof EventSchema>;
