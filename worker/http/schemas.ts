import { z } from "@hono/zod-openapi";
import {
  BroadcastEntrySchema,
  ErrorCodeSchema,
  FeedSchema,
  HealthSchema,
  PublishStateSchema,
  StageSchema,
  StatsSchema,
} from "../../protocol/api.ts";
import {
  PARTICIPANT_ID_PATTERN,
  STAGE_ARN_OR_ID_PATTERN,
  STAGE_ARN_PATTERN,
  USER_ID_RULE,
  isUserId,
} from "../../protocol/ids.ts";

/**
 * Request and response schemas of the HTTP API (README.md, "HTTP API").
 * Routes validate with them and /api/openapi.json is generated from them.
 */

export const StageArn = z
  .string()
  .regex(STAGE_ARN_PATTERN, "must be an IVS stage ARN")
  .openapi({ example: "arn:aws:ivs:us-east-1:123456789012:stage/AbCdEf123456" });

/** Any text IVS takes as a user id (names in any script, spaces), without control characters. */
export const UserId = z
  .string()
  .refine(isUserId, USER_ID_RULE)
  .openapi({ example: "viewer-42", description: USER_ID_RULE, maxLength: 128 });

/** Exactly what IVS accepts as a participant id: letters, digits and dashes. */
const ParticipantId = z
  .string()
  .regex(PARTICIPANT_ID_PATTERN, "must be an IVS participant id (letters, digits and dashes)")
  .openapi({ example: "hV3xkQ9aLm2P" });

/** The participant's current token, as Fanout issued it: the proof that the caller is that participant. */
const ParticipantToken = z.string().min(1).max(8192).openapi({
  description: "The participant token Fanout issued to this participant (its latest, or one not yet expired)",
});

export const ErrorSchema = z
  .object({
    success: z.literal(false),
    error: z.object({
      code: ErrorCodeSchema,
      message: z.string(),
      details: z.record(z.string(), z.unknown()).optional(),
    }),
  })
  .openapi("Error");

export const envelope = <T extends z.ZodType>(data: T) => z.object({ success: z.literal(true), data });

// ── requests ────────────────────────────────────────────────────────────────

export const ViewerTokenRequest = z
  .object({ userId: UserId, stageArn: StageArn.optional() })
  .openapi("ViewerTokenRequest");
/** Renewal: the participant whose token is expiring, kept when tokens are self-signed. */
const RenewingParticipant = ParticipantId.optional().openapi({
  description: "Renewal: the participant whose token is expiring; kept when tokens are self-signed",
});
export const PublisherTokenRequest = z
  .object({
    userId: UserId,
    participantId: RenewingParticipant,
    encoder: z.enum(["studio", "obs"]).optional().openapi({
      description:
        "Who publishes: the studio page (default), or OBS / any WHIP encoder — a participant of its own, publish-only, lasting OBS_TOKEN_MINUTES, whose publish state Fanout learns from IVS",
    }),
  })
  .openapi("PublisherTokenRequest");
export const StageTokenRequest = z
  .object({ stageArn: StageArn, participantId: RenewingParticipant })
  .openapi("StageTokenRequest");
/**
 * Every call that acts as one viewer (renew, heartbeat, leave, rejoin) names the participant and
 * proves it with its token: participant ids are not secrets (IVS shows them to the stage), tokens are.
 */
export const ParticipantProof = z
  .object({ userId: UserId, stageArn: StageArn, participantId: ParticipantId, token: ParticipantToken })
  .openapi("ParticipantProof");
export const StageUpdateRequest = z.object({ state: z.enum(["ready", "draining"]) }).openapi("StageUpdateRequest");
/** A crowd the operator expects: the pool gets ready for its arrival rate from now on. */
export const CrowdRequest = z
  .object({
    viewers: z.number().int().min(1).max(10_000_000).openapi({ example: 1_000_000 }),
    withinSeconds: z.number().int().min(1).max(3_600).openapi({ example: 60 }),
    startsInSeconds: z.number().int().min(0).max(3_600).default(0).openapi({ example: 300 }),
  })
  .openapi("CrowdRequest");
export const CrowdView = z
  .object({
    viewers: z.number().int(),
    joinRate: z.number(),
    until: z.iso.datetime(),
    stagesWanted: z.number().int(),
  })
  .openapi("Crowd");
export const PublishStateRequest = z
  .object({ stageArn: StageArn, state: PublishStateSchema })
  .openapi("PublishStateRequest");

/** A stage in a path: the full ARN (URL-encoded) or just its id. */
export const StageParam = z.object({
  stageArn: z
    .string()
    .regex(STAGE_ARN_OR_ID_PATTERN, "must be a stage ARN or stage id")
    .openapi({ param: { name: "stageArn", in: "path" }, example: "AbCdEf123456" }),
});

// ── responses ───────────────────────────────────────────────────────────────

const Capability = z.enum(["PUBLISH", "SUBSCRIBE"]);

const IssuedToken = z.object({
  token: z.string(),
  participantId: z.string(),
  stageArn: z.string(),
  userId: z.string(),
  capabilities: z.array(Capability),
  expiresIn: z.number().int().openapi({ description: "seconds" }),
  expiresAt: z.string(),
});

export const ViewerToken = IssuedToken.extend({
  currentViewers: z.number().int(),
  heartbeatIntervalSeconds: z.number().int(),
}).openapi("ViewerToken");

export const PublisherToken = IssuedToken.extend({ whipEndpoint: z.string() }).openapi("PublisherToken");

export const StageToken = z
  .object({ token: z.string(), participantId: z.string(), expiresIn: z.number().int(), expiresAt: z.string() })
  .openapi("StageToken");

const Feed = FeedSchema;

export const StageView = StageSchema.openapi("Stage");

export const BroadcasterStage = z
  .object({
    stageArn: z.string(),
    stageId: z.string(),
    token: z.string().nullable(),
    viewerCount: z.number().int(),
    feed: Feed,
  })
  .openapi("BroadcasterStage");

export const Viewer = z
  .object({
    participantId: z.string(),
    userId: z.string(),
    joinedAt: z.string(),
    lastSeen: z.string(),
    connected: z.boolean(),
  })
  .openapi("Viewer");

export const Presence = z
  .object({
    userId: z.string(),
    stageArn: z.string(),
    viewers: z.number().int(),
    state: z.enum(["ready", "draining", "closed"]),
    status: z.enum(["present", "readmitted", "moved"]).openapi({
      description:
        "present: counted; readmitted: it had timed out and is counted again on the same stage; moved: that stage no longer seats it — `join` is its seat elsewhere",
    }),
    migrateTo: z.string().optional().openapi({
      description: "The stage to go to: the stage drains (or is gone). Leave this one and join there with `join`.",
    }),
    join: ViewerToken.optional().openapi({
      description:
        "A token on `migrateTo` for this user: with `moved`, and with the first heartbeat after the stage began draining (later ones repeat `migrateTo` only: POST /token/viewer with that stageArn for another)",
    }),
    nextHeartbeatSeconds: z.number().int(),
  })
  .openapi("Presence");

export const Stats = StatsSchema.openapi("Stats");

export const HealthView = HealthSchema.openapi("Health");

export const BroadcastEntry = BroadcastEntrySchema.openapi("BroadcastEntry");

export const Session = z
  .object({
    participantId: z.string(),
    stageArn: z.string(),
    joinedAt: z.string(),
    leftAt: z.string(),
    durationSeconds: z.number().int(),
    reason: z.string(),
  })
  .openapi("ViewingSession");
