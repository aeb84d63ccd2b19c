import { z } from "zod";
import { STAGE_ARN_PATTERN } from "../protocol/ids.ts";
import type { ScalingSettings } from "./scaling/policy.ts";
import { shardsPerStage } from "./shard/admission.ts";

/**
 * The Worker's configuration, read from `[vars]` and secrets (README.md, "Configuration").
 * Parsed once per `env` object; a missing or invalid value fails the request
 * with a message that names the variable, never silently.
 */

export class ConfigError extends Error {
  readonly variable: string;
  constructor(variable: string, problem: string) {
    super(`Configuration error: ${variable} ${problem}.`);
    this.variable = variable;
  }
}

const minutes = (fallback: number) => z.coerce.number().int().min(1).max(20160).default(fallback);
const positiveInt = (fallback: number) => z.coerce.number().int().min(1).default(fallback);
const fraction = (fallback: number) => z.coerce.number().gt(0).max(1).default(fallback);
const seconds = (fallback: number) => z.coerce.number().int().min(0).default(fallback);
const optionalSecret = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === "" ? undefined : v.trim()));

const Schema = z.object({
  AWS_REGION: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, "must be an AWS region such as us-east-1"),
  AWS_ACCESS_KEY_ID: z.string().min(1, "is not set"),
  AWS_SECRET_ACCESS_KEY: z.string().min(1, "is not set"),
  AWS_SESSION_TOKEN: optionalSecret,
  IVS_ENDPOINT: z
    .string()
    .optional()
    .transform((v) => (v === undefined || v.trim() === "" ? undefined : v.trim().replace(/\/+$/, "")))
    .pipe(z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }).optional()),
  IVS_TIMEOUT_MS: positiveInt(5000),
  IVS_MAX_RETRIES: z.coerce.number().int().min(0).max(10).default(3),
  ADMIN_KEY: z.string().min(16, "must be set to a key of at least 16 characters"),
  VIEWER_KEY: optionalSecret,
  VIEWER_ACCESS: z.enum(["open", "key"]).default("open"),
  TOKEN_PRIVATE_KEY: optionalSecret,
  TOKEN_KEY_ARN: optionalSecret.pipe(
    z
      .string()
      .regex(/^arn:aws:ivs:[a-z0-9-]+:[0-9]+:public-key\/[a-zA-Z0-9-]+$/, "must be an IVS public key ARN")
      .optional(),
  ),
  VIEWER_TOKEN_MINUTES: minutes(60),
  PUBLISHER_TOKEN_MINUTES: minutes(240),
  /** OBS cannot renew its token: it lasts the longest broadcast you expect (IVS allows up to 14 days). */
  OBS_TOKEN_MINUTES: minutes(720),
  FANOUT_MODE: z.enum(["replica", "direct"]).default("replica"),
  FANOUT_DEPLOYMENT: z
    .string()
    .regex(/^[a-zA-Z0-9-]{1,64}$/, "must be 1-64 letters, digits or dashes")
    .default("fanout"),
  MASTER_STAGE_ARN: optionalSecret.pipe(z.string().regex(STAGE_ARN_PATTERN, "must be an IVS stage ARN").optional()),
  STAGE_CAPACITY: positiveInt(10_000),
  SCALE_UP_AT: fraction(0.8),
  SCALE_DOWN_AT: fraction(0.5),
  MAX_STAGES: z.coerce.number().int().min(1).max(1000).default(20),
  STAGE_WARMUP_SECONDS: seconds(300),
  DRAIN_TIMEOUT_SECONDS: seconds(300),
  SCALE_LEAD_SECONDS: seconds(10),
  /** While viewers arrive, the stages with room hold this many seconds of them (scaling/policy.ts, "Arrivals too"). */
  SCALE_ARRIVAL_SECONDS: z.coerce.number().min(0).max(60).default(3),
  /**
   * A stage's viewers are spread over shards (StageShard objects) of at most this many seats: a crowd
   * meets as many objects as the stage has shards, from its first second (shard/admission.ts).
   */
  SEATS_PER_SHARD: positiveInt(250),
  /** Admissions a second one shard should take at most; the pool grows to keep each under it during a crowd. */
  ADMISSIONS_PER_SHARD_PER_SECOND: positiveInt(500),
  HEARTBEAT_INTERVAL_SECONDS: positiveInt(30),
  VIEWER_TTL_SECONDS: positiveInt(60),
  REPLICA_RECONNECT_WINDOW_SECONDS: z.coerce.number().int().min(0).max(300).default(60),
  PUBLISHER_IDLE_END_MINUTES: positiveInt(10),
  SNAPSHOT_INTERVAL_MINUTES: positiveInt(5),
  RETENTION_DAYS: positiveInt(90),
  RATE_LIMITING: z.enum(["on", "off"]).default("on"),
  // Every stats socket of a broadcast, over all its relays; the broadcaster sockets on the object count apart.
  SOCKETS_PER_BROADCAST: z.coerce.number().int().min(1).max(10_000_000).default(1_000_000),
  // Below the 32,768 WebSockets a Durable Object can hibernate with.
  STATS_SOCKETS_PER_RELAY: z.coerce.number().int().min(1).max(32_000).default(2_000),
  // Messages one relay sends a second at most: with more subscribers, its updates are further apart.
  STATS_MESSAGES_PER_SECOND: positiveInt(10_000),
  // IVS allows 5; a little less leaves room for the operator's own calls (console, CLI).
  IVS_CONTROL_TPS: z.coerce.number().gt(0).max(5).default(4),
  CORS_ORIGINS: z
    .string()
    .default("*")
    .transform((v) => v.split(/[\s,]+/).filter(Boolean))
    .pipe(
      z.array(
        z.union([
          z.literal("*"),
          z.url({ protocol: /^https?$/, error: "must be * or a list of origins such as https://example.com" }),
        ]),
      ),
    ),
  /** The shared secret EventBridge's API destination sends (x-api-key); unset: the events route is closed. */
  IVS_EVENTS_KEY: optionalSecret.pipe(z.string().min(16, "must be at least 16 characters").optional()),
  PRICE_PER_PARTICIPANT_HOUR: optionalSecret
    .transform((v) => (v === undefined ? undefined : Number(v)))
    .pipe(z.number("must be a number").min(0, "must be a price of 0 or more (USD per participant-hour)").optional()),
});

export interface Config {
  ivs: {
    region: string;
    /** The IVS Real-Time API, `https://ivsrealtime.<region>.amazonaws.com` unless overridden. */
    endpoint: string;
    accessKeyId: string;
    secretAccessKey: string;
    sessionToken?: string;
    timeoutMs: number;
    maxRetries: number;
    /** Requests a second for each operation IVS limits to 5 TPS per account. */
    controlTps: number;
  };
  adminKey: string;
  viewerKey?: string;
  viewerAccess: "open" | "key";
  /** Present when participant tokens are self-signed (docs/design.md, "Tokens"); absent: CreateParticipantToken. */
  tokenKey?: { privateKey: string; keyArn: string };
  tokenMinutes: { viewer: number; publisher: number; obs: number };
  mode: "replica" | "direct";
  /** Written into the `fanout:creator` tag of every stage, to tell deployments apart. */
  deployment: string;
  /** An existing stage to use as every broadcast's origin instead of creating one. */
  masterStageArn?: string;
  scaling: ScalingSettings & {
    /** Shards (StageShard objects) a new stage's seats are spread over (SEATS_PER_SHARD). */
    shardsPerStage: number;
    /** Admissions a second one shard should take at most; `admissionRate` is a stage's: this times its shards. */
    admissionsPerShard: number;
  };
  presence: { heartbeatIntervalMs: number; viewerTtlMs: number };
  replicaReconnectWindowSeconds: number;
  publisherIdleEndMs: number;
  snapshotIntervalMs: number;
  retentionMs: number;
  rateLimiting: boolean;
  limits: {
    /** Stats sockets per broadcast, over all its relays. */
    socketsPerBroadcast: number;
    /** Sockets one object holds: a relay's stats sockets, the Broadcast object's broadcaster sockets. */
    statsSocketsPerRelay: number;
    statsMessagesPerSecond: number;
    /** How many relays a broadcast's stats sockets may spread over. */
    maxRelays: number;
  };
  /** USD per participant-hour, for the dashboard's estimate; absent: hours only. */
  pricePerParticipantHour?: number;
  /** Origins whose pages may call the API and open the sockets; `"*"`: any (no route relies on cookies). */
  corsOrigins: "*" | string[];
  /** The key EventBridge's API destination presents on `POST /api/ivs/events`; absent: that route refuses everything. */
  ivsEventsKey?: string;
}

const cache = new WeakMap<object, Config>();

export function loadConfig(env: object): Config {
  const cached = cache.get(env);
  if (cached) return cached;
  const parsed = Schema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const variable = String(issue.path[0] ?? "configuration");
    const problem = issue.code === "invalid_type" && issue.input === undefined ? "is not set" : issue.message;
    throw new ConfigError(variable, problem);
  }
  const v = parsed.data;
  if ((v.TOKEN_PRIVATE_KEY === undefined) !== (v.TOKEN_KEY_ARN === undefined)) {
    const missing = v.TOKEN_PRIVATE_KEY === undefined ? "TOKEN_PRIVATE_KEY" : "TOKEN_KEY_ARN";
    throw new ConfigError(missing, "must be set together with the other token key variable (run `npm run keys`)");
  }
  if (v.VIEWER_ACCESS === "key" && v.VIEWER_KEY === undefined) {
    throw new ConfigError("VIEWER_KEY", "must be set when VIEWER_ACCESS is 'key'");
  }
  const config: Config = {
    ivs: {
      region: v.AWS_REGION,
      endpoint: v.IVS_ENDPOINT ?? `https://ivsrealtime.${v.AWS_REGION}.amazonaws.com`,
      accessKeyId: v.AWS_ACCESS_KEY_ID,
      secretAccessKey: v.AWS_SECRET_ACCESS_KEY,
      sessionToken: v.AWS_SESSION_TOKEN,
      timeoutMs: v.IVS_TIMEOUT_MS,
      maxRetries: v.IVS_MAX_RETRIES,
      controlTps: v.IVS_CONTROL_TPS,
    },
    adminKey: v.ADMIN_KEY,
    viewerKey: v.VIEWER_KEY,
    viewerAccess: v.VIEWER_ACCESS,
    tokenKey:
      v.TOKEN_PRIVATE_KEY && v.TOKEN_KEY_ARN ? { privateKey: v.TOKEN_PRIVATE_KEY, keyArn: v.TOKEN_KEY_ARN } : undefined,
    tokenMinutes: { viewer: v.VIEWER_TOKEN_MINUTES, publisher: v.PUBLISHER_TOKEN_MINUTES, obs: v.OBS_TOKEN_MINUTES },
    mode: v.FANOUT_MODE,
    deployment: v.FANOUT_DEPLOYMENT,
    masterStageArn: v.MASTER_STAGE_ARN,
    scaling: {
      capacity: v.STAGE_CAPACITY,
      scaleUpAt: v.SCALE_UP_AT,
      scaleDownAt: Math.min(v.SCALE_DOWN_AT, v.SCALE_UP_AT),
      maxStages: v.MAX_STAGES,
      warmupMs: v.STAGE_WARMUP_SECONDS * 1000,
      // Never shorter than the viewer TTL: a viewer still seated when the stage goes has then sent a
      // heartbeat since the drain began, and so was told where to go (HTTP-only clients hear it no other way).
      drainTimeoutMs: Math.max(v.DRAIN_TIMEOUT_SECONDS, v.VIEWER_TTL_SECONDS) * 1000,
      leadSeconds: v.SCALE_LEAD_SECONDS,
      arrivalSeconds: v.SCALE_ARRIVAL_SECONDS,
      shardsPerStage: shardsPerStage(v.STAGE_CAPACITY, v.SEATS_PER_SHARD),
      admissionsPerShard: v.ADMISSIONS_PER_SHARD_PER_SECOND,
      // What one stage admits a second: every one of its shards at its rate.
      admissionRate: v.ADMISSIONS_PER_SHARD_PER_SECOND * shardsPerStage(v.STAGE_CAPACITY, v.SEATS_PER_SHARD),
    },
    presence: { heartbeatIntervalMs: v.HEARTBEAT_INTERVAL_SECONDS * 1000, viewerTtlMs: v.VIEWER_TTL_SECONDS * 1000 },
    replicaReconnectWindowSeconds: v.REPLICA_RECONNECT_WINDOW_SECONDS,
    publisherIdleEndMs: v.PUBLISHER_IDLE_END_MINUTES * 60_000,
    snapshotIntervalMs: v.SNAPSHOT_INTERVAL_MINUTES * 60_000,
    retentionMs: v.RETENTION_DAYS * 86_400_000,
    rateLimiting: v.RATE_LIMITING === "on",
    limits: {
      socketsPerBroadcast: v.SOCKETS_PER_BROADCAST,
      statsSocketsPerRelay: v.STATS_SOCKETS_PER_RELAY,
      statsMessagesPerSecond: v.STATS_MESSAGES_PER_SECOND,
      maxRelays: Math.ceil(v.SOCKETS_PER_BROADCAST / v.STATS_SOCKETS_PER_RELAY),
    },
    pricePerParticipantHour: v.PRICE_PER_PARTICIPANT_HOUR,
    corsOrigins: v.CORS_ORIGINS.includes("*") ? "*" : v.CORS_ORIGINS.map((o) => new URL(o).origin),
    ivsEventsKey: v.IVS_EVENTS_KEY,
  };
  cache.set(env, config);
  return config;
}
