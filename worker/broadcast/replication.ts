import { backoffDelay } from "../../protocol/backoff.ts";
import { IvsError } from "../ivs/error.ts";
import type { BroadcastContext } from "./context.ts";
import { isPendingReplica, isPlaceholder, type StageRow } from "./registry.ts";
import { announce } from "./stage-tokens.ts";

/**
 * The publisher's feed into every edge stage: `StartParticipantReplication`
 * from the origin, for the publisher's participant. IVS only accepts it while
 * the publisher publishes, so a refusal is retried on a schedule kept in the
 * stage's row (`replication_next_at`); the alarm wakes for it. A refusal that
 * is not worth retrying puts the stage on a direct feed: the studio is told and
 * publishes into it itself. See docs/design.md, "Feeds".
 */

/** The retry schedule: 1 s, 2 s, 4 s, 8 s, then every 15 s. Shown to operators, so without jitter. */
const RETRY = { baseMs: 500, capMs: 15_000, jitter: "none" } as const;
/**
 * Tries while the publisher publishes before a stage falls back to a direct feed: about two
 * and a half minutes (1 + 2 + 4 + 8 s, then 15 s apart).
 */
const MAX_ATTEMPTS_WHILE_PUBLISHING = 12;
const CHECK_INTERVAL_MS = 30_000;

export type RetryDecision = { retry: true; waitMs: number } | { retry: false };

/**
 * What to do after IVS refused to start a replica, `attempts` tries in. AWS documents the
 * errors StartParticipantReplication answers (404, 400, 403, 500, 402, 409, and 403
 * PendingVerification) but not which one means "the publisher is not publishing yet", so
 * only a refusal about the account itself (403: access denied, pending verification) is
 * final. Every other refusal is retried with backoff: for as long as it takes while the
 * publisher is not publishing (it cannot work before), and for a bounded time once it is;
 * then the stage falls back to a direct feed.
 */
export function replicationRetry(error: IvsError, attempts: number, publishing: boolean): RetryDecision {
  if (error.kind === "access_denied") return { retry: false };
  if (!publishing || attempts < MAX_ATTEMPTS_WHILE_PUBLISHING)
    return { retry: true, waitMs: backoffDelay(attempts + 1, RETRY) };
  return { retry: false };
}

export class Replication {
  readonly #c: BroadcastContext;

  constructor(context: BroadcastContext) {
    this.#c = context;
  }

  /**
   * A new publisher participant: every replica must follow it. A stage that fell back to a
   * direct feed gets another chance at replication too, when the previous publisher is no
   * longer publishing (a new session: nothing publishes into it directly any more).
   */
  followNewPublisher(now: number, previousPublishing: boolean): void {
    const { registry } = this.#c;
    for (const stage of registry.stages()) {
      if (stage.role !== "edge") continue;
      const retryFailed = stage.replication === "failed" && !previousPublishing;
      if ((stage.feed === "replica" && stage.replication !== "failed") || retryFailed)
        registry.updateStage(stage.arn, {
          feed: "replica",
          replication: "pending",
          replication_attempts: 0,
          replication_next_at: now,
          replication_error: null,
        });
    }
  }

  /** The publisher publishes now: try every pending replica at once instead of waiting out its backoff. */
  retryNow(now: number): void {
    const { registry } = this.#c;
    for (const s of registry.stages()) {
      if (s.replication === "pending")
        registry.updateStage(s.arn, { replication_attempts: 0, replication_next_at: now });
    }
  }

  /** The operator asks for a replica feed into `stage`: tried at once. */
  async start(stage: StageRow, now: number): Promise<void> {
    this.#c.registry.updateStage(stage.arn, {
      feed: "replica",
      replication: "pending",
      replication_attempts: 0,
      replication_next_at: now,
      replication_error: null,
    });
    await this.replicate(now, stage.arn);
  }

  /** Starts replication into every pending replica stage whose retry is due (or into `only`). */
  async replicate(now: number, only?: string): Promise<void> {
    const { registry, ivs, config } = this.#c;
    const publisher = registry.publisher();
    const origin = registry.origin();
    if (!publisher || !origin) return;
    const due = registry
      .stages()
      .filter(isPendingReplica)
      .filter((s) => (only ? s.arn === only : s.replication_next_at <= now));
    for (const stage of due) {
      try {
        await ivs.startParticipantReplication({
          sourceStageArn: origin.arn,
          destinationStageArn: stage.arn,
          participantId: publisher.participant_id,
          reconnectWindowSeconds: config.replicaReconnectWindowSeconds,
        });
        this.#active(stage);
        registry.event("replication_started", { stageArn: stage.arn });
      } catch (error) {
        if (!(error instanceof IvsError)) throw error;
        // Already replicating (a retry after a lost answer): nothing to do.
        if (error.kind === "conflict" && (await this.#isActive(origin.arn, publisher.participant_id, stage.arn))) {
          this.#active(stage);
          continue;
        }
        const decision = replicationRetry(error, stage.replication_attempts, publisher.state === "publishing");
        if (decision.retry) {
          registry.updateStage(stage.arn, {
            replication_attempts: stage.replication_attempts + 1,
            replication_next_at: now + decision.waitMs,
            replication_error: errorText(error),
          });
        } else {
          await this.#fallBackToDirect(stage, error);
        }
      }
    }
    this.#c.channels.statsChanged();
  }

  /** Replicas stop when the publisher is gone past its reconnect window: notice it and start again. */
  async check(now: number): Promise<void> {
    const { registry, ivs } = this.#c;
    const publisher = registry.publisher();
    const origin = registry.origin();
    const active = registry.stages().filter((s) => s.replication === "active");
    if (!publisher || !origin || active.length === 0 || now - registry.state().replicas_checked_at < CHECK_INTERVAL_MS)
      return;
    registry.setState({ replicas_checked_at: now });
    // Every page: a replica beyond the first would look stopped and be started again (409) for ever.
    const replicas = await ivs.listAllParticipantReplicas({
      sourceStageArn: origin.arn,
      participantId: publisher.participant_id,
    });
    const live = new Set(replicas.filter((r) => r.replicationState === "ACTIVE").map((r) => r.destinationStageArn));
    for (const stage of active) {
      if (!live.has(stage.arn))
        registry.updateStage(stage.arn, { replication: "pending", replication_attempts: 0, replication_next_at: now });
    }
  }

  /** Stops replicating into a stage (before it is deleted, or on the operator's word). */
  async stop(stage: StageRow): Promise<void> {
    const { registry, ivs } = this.#c;
    const publisher = registry.publisher();
    // The source even while it is being deleted itself (the end deletes the edges first, then the origin).
    const origin = registry.stages().find((s) => s.role === "origin" && !isPlaceholder(s));
    if (stage.replication !== "active" || !publisher || !origin) return;
    try {
      await ivs.stopParticipantReplication({
        sourceStageArn: origin.arn,
        destinationStageArn: stage.arn,
        participantId: publisher.participant_id,
      });
    } catch (error) {
      if (!(error instanceof IvsError && error.kind === "not_found")) throw error;
    }
    registry.event("replication_stopped", { stageArn: stage.arn });
  }

  #active(stage: StageRow): void {
    this.#c.registry.updateStage(stage.arn, {
      replication: "active",
      replication_error: null,
      replication_attempts: 0,
    });
  }

  async #isActive(origin: string, participantId: string, destination: string): Promise<boolean> {
    const replicas = await this.#c.ivs.listAllParticipantReplicas({ sourceStageArn: origin, participantId });
    return replicas.some((r) => r.destinationStageArn === destination && r.replicationState === "ACTIVE");
  }

  async #fallBackToDirect(stage: StageRow, error: IvsError): Promise<void> {
    const { registry } = this.#c;
    registry.updateStage(stage.arn, { feed: "direct", replication: "failed", replication_error: errorText(error) });
    registry.event("replication_failed", {
      stageArn: stage.arn,
      error: error.type,
      message: error.message,
      attempts: stage.replication_attempts + 1,
      fallback: "direct",
    });
    await announce(this.#c, registry.stage(stage.arn)!);
  }
}

/** What IVS said, for the operator: its error type and message (never a secret: IVS does not echo credentials). */
const errorText = (error: IvsError) => error.message.replace(/^IVS \S+ failed: /, "").slice(0, 300);
