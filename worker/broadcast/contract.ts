import type { Feed, PublisherStats, Stage } from "../../protocol/api.ts";
import { IvsError } from "../ivs/error.ts";
import type { IssuedToken } from "../tokens/participant-token.ts";

/**
 * What the Broadcast object and its callers (the HTTP routes, the join path,
 * the shards, the cron) agree on: the shapes that cross its RPC boundary and
 * its one error contract. Callers import this module, never the object.
 */

// ── the join path ───────────────────────────────────────────────────────────

export interface RoutingStage {
  arn: string;
  state: Stage["state"];
  role: Stage["role"];
  viewers: number;
  capacity: number;
  /** Admissions a second its shards reported lately, together (0 when it has not reported for a while). */
  joinRate: number;
  /** The shards its seats are spread over (shard/admission.ts): a viewer's is `shardOf(participantId, shards)`. */
  shards: number;
  /** Shards that refused a join since this isolate read the table (join.ts; never sent by the broadcast). */
  refusedShards?: number[];
  endpoints: { events: string; whip: string };
}

export interface RoutingTable {
  status: BroadcastStatus;
  stages: RoutingStage[];
  /** Whether another stage can still be added (below the maximum, and IVS not refusing for now). */
  canGrow: boolean;
  /** Stages being created right now. */
  creating: number;
  /** How many stats relays new `/ws` sockets spread over (relay/stats-relay.ts). */
  statsRelays: number;
  /** Relays that reported as many sockets as they take: new sockets go to the others. */
  fullRelays?: number[];
  /** While IVS refuses new stages (quota, throttling): when to come back, for a full broadcast's 503. */
  growBlockedForSeconds?: number;
}

export type BroadcastStatus = "idle" | "live" | "ended";

// ── the shards ──────────────────────────────────────────────────────────────

export interface EndedSession {
  participantId: string;
  userId: string;
  joinedAt: number;
  leftAt: number;
  reason: string;
}

export interface LoadReport {
  stageArn: string;
  viewers: number;
  /** Admissions per second since the shard's last report. */
  joinRate: number;
  ended: EndedSession[];
}

export interface LoadReply {
  live: boolean;
  totalViewers: number;
}

// ── the publisher ───────────────────────────────────────────────────────────

export interface PublisherGrant extends IssuedToken {
  whipEndpoint: string;
  userId: string;
}

export interface PublishToken {
  stageArn: string;
  token: string;
  participantId: string;
  feed: Feed;
}

export interface PublisherInfo {
  publisher: PublisherStats | null;
  originStageArn: string | null;
  isPublisherLive: boolean;
}

// ── the error contract ──────────────────────────────────────────────────────

/**
 * Why a Broadcast RPC did not do what it was asked:
 * - `NOT_FOUND`: no such stage in this broadcast;
 * - `CONFLICT`: not now, in this state (the origin while live, the maximum of stages);
 * - `IVS_BUSY`: IVS throttled the call or the account's quota is used up: try again after `retryAfterSeconds`;
 * - `IVS_REFUSED`: IVS refused or failed otherwise.
 */
export type FailureCode = "NOT_FOUND" | "CONFLICT" | "IVS_BUSY" | "IVS_REFUSED";

export interface Failure {
  code: FailureCode;
  message: string;
  retryAfterSeconds?: number;
}

/**
 * Every Broadcast RPC answers a Result. Errors thrown across RPC keep their
 * message but lose their class and fields, so a failure crosses as a value;
 * the HTTP layer turns it into a response in one place (`apiError`).
 */
export type Result<T> = { ok: true; value: T } | { ok: false; failure: Failure };

/** Thrown inside the object; the object's RPC surface turns it into a failed Result. */
export class BroadcastFailure extends Error {
  readonly failure: Failure;
  constructor(failure: Failure, options?: { cause?: unknown }) {
    super(failure.message, options);
    this.name = "BroadcastFailure";
    this.failure = failure;
  }
}

/** Throttling clears in seconds; an account quota (stages per account) rarely does. */
const RETRY_AFTER_THROTTLED_SECONDS = 2;
const RETRY_AFTER_QUOTA_SECONDS = 30;

/** An IVS failure, as the contract names it. `doing` says what Fanout was doing ("create a stage"). */
export function ivsFailure(error: IvsError, doing: string): Failure {
  const message = `IVS could not ${doing} (${error.type}).`;
  if (error.kind === "throttled")
    return { code: "IVS_BUSY", message, retryAfterSeconds: RETRY_AFTER_THROTTLED_SECONDS };
  if (error.kind === "quota") return { code: "IVS_BUSY", message, retryAfterSeconds: RETRY_AFTER_QUOTA_SECONDS };
  return { code: "IVS_REFUSED", message };
}

/** The failure an error means, or undefined for an error that is a bug (it stays an error: a 500). */
export function failureOf(error: unknown, doing?: string): Failure | undefined {
  if (error instanceof BroadcastFailure) return error.failure;
  if (error instanceof IvsError) return ivsFailure(error, doing ?? `complete ${error.operation}`);
  return undefined;
}

export async function resultOf<T>(work: () => T | Promise<T>): Promise<Result<T>> {
  try {
    return { ok: true, value: await work() };
  } catch (error) {
    const failure = failureOf(error);
    if (failure) return { ok: false, failure };
    throw error;
  }
}

export const notFound = (stageArn: string) =>
  new BroadcastFailure({ code: "NOT_FOUND", message: `Stage ${stageArn} is not part of this broadcast.` });

export const conflict = (message: string) => new BroadcastFailure({ code: "CONFLICT", message });
