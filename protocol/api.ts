import { z } from "zod";

/**
 * The HTTP API's wire shapes (SPEC §7), shared by the Worker and the pages:
 * zod schemas where the API answers with them (the routes and the OpenAPI
 * document use the same objects), types inferred from them.
 */

export type ErrorCode =
  | "VALIDATION_ERROR"
  | "UNAUTHORIZED"
  | "NOT_FOUND"
  | "RATE_LIMITED"
  | "STAGE_FULL"
  | "TOKEN_GENERATION_FAILED"
  | "INTERNAL_ERROR";

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
export interface Health {
  status: "ok";
  region: string;
  tokens: "self-signed" | "api";
  mode: "replica" | "direct";
  time: string;
}

export const FeedSchema = z.enum(["replica", "direct"]);
export const StageStateSchema = z.enum(["creating", "ready", "draining", "deleting"]);
export const PublishStateSchema = z.enum(["connecting", "publishing", "stopped", "failed"]);
const ReplicationSchema = z.enum(["none", "pending", "active", "failed"]);
export type Feed = z.infer<typeof FeedSchema>;
export type StageState = z.infer<typeof StageStateSchema>;
export type PublishState = z.infer<typeof PublishStateSchema>;

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

/** `GET /api/stats` and the stats socket's `stats_update` (seed 003 fields first). */
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
});
export type Stats = z.infer<typeof StatsSchema>;

/** `GET /api/broadcasts`: recent broadcasts, live first, for the landing page. */
export interface BroadcastEntry {
  broadcastId: string;
  status: "live" | "ended";
  startedAt: string;
  endedAt: string | null;
}
