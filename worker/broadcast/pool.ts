import type { Feed } from "../../protocol/api.ts";
import { backoffDelay } from "../../protocol/backoff.ts";
import { IvsError } from "../ivs/error.ts";
import { fanoutTags, stageName, TAG } from "../ivs/tags.ts";
import type { Stage } from "../ivs/types.ts";
import { decideScaling, type StageLoad } from "../scaling/policy.ts";
import type { BroadcastContext } from "./context.ts";
import { BroadcastFailure, conflict, ivsFailure, notFound } from "./contract.ts";
import { iso, isActive, isPlaceholder, type StageRow } from "./registry.ts";
import type { Replication } from "./replication.ts";
import { announce } from "./stage-tokens.ts";
import { RATE_FRESH_MS } from "./timing.ts";

/**
 * The broadcast's stages at IVS: the origin, edge stages created and deleted
 * as the scaling policy decides (docs/design.md, "Scaling"), drained and
 * revived, and the operator's own stage actions. Every change here runs inside
 * the object's serial queue, so two triggers never create a stage for one need.
 *
 * Every stage Fanout created is eventually deleted, whatever fails (docs/design.md,
 * "Faults"): a deletion is a row in state `deleting`, written before any IVS call
 * and retried on a schedule kept in the row until IVS confirms the stage is gone;
 * a creation is a placeholder row written before CreateStage, whose request id
 * is a tag on the stage, so that a creation cut short (a timeout, a restart) is
 * found by its tag and finished or deleted. A refused CreateStage (quota,
 * throttling) blocks further creations for a while instead of asking again at
 * every report and join.
 */

/** Deletion retries: 1 s, 2 s, 4 s ... then every minute, until IVS confirms. */
const DELETE_RETRY = { baseMs: 1_000, capMs: 60_000, jitter: "none" } as const;
/** After this many tries a failing StopParticipantReplication is skipped: DeleteStage ends the replica anyway. */
const STOP_REPLICATION_TRIES = 3;
/** Creation blocked after a refusal: a used-up quota rarely clears in seconds; throttling and failures do. */
const CREATE_BACKOFF = {
  quota: { baseMs: 30_000, capMs: 300_000, jitter: "none" },
  other: { baseMs: 2_000, capMs: 60_000, jitter: "none" },
} as const;
/** Creation attempts for one stage when IVS answers a 5xx (the stage may exist: it is looked for by its tag first). */
const CREATE_ATTEMPTS = 3;

export class StagePool {
  readonly #c: BroadcastContext;
  readonly #replication: Replication;
  /** Placeholders whose CreateStage is under way in this incarnation; any other placeholder was left by a restart. */
  readonly #inFlight = new Set<string>();

  constructor(context: BroadcastContext, replication: Replication) {
    this.#c = context;
    this.#replication = replication;
  }

  /** A stage of this broadcast, or NOT_FOUND. A stage being deleted counts only when `deleting` says so. */
  require(arn: string, options: { deleting?: boolean } = {}): StageRow {
    const stage = this.#c.registry.stage(arn);
    if (!stage || isPlaceholder(stage) || (stage.state === "deleting" && !options.deleting)) throw notFound(arn);
    return stage;
  }

  /** The origin: the operator's MASTER_STAGE_ARN, or a stage created for this broadcast on first use. */
  async ensureOrigin(): Promise<StageRow> {
    const existing = this.#c.registry.origin();
    if (existing) return existing;
    const master = this.#c.config.masterStageArn;
    return master ? this.#adoptMaster(master) : this.#create("origin");
  }

  // ── the scaling policy, applied ─────────────────────────────────────────────

  loads(now: number): StageLoad[] {
    // A placeholder counts, in flight or not: until it is resolved, its stage may exist.
    return this.#c.registry.stages().map((s) => ({
      joinRate: now - s.load_reported_at <= RATE_FRESH_MS ? s.join_rate : 0,
      arn: s.arn,
      role: s.role,
      state: s.state,
      viewers: s.viewers,
      createdAt: s.created_at,
      drainingSince: s.draining_since ?? undefined,
    }));
  }

  /** Whether creation is held back after IVS refused a CreateStage, and until when. */
  creationBlocked(now: number): number | undefined {
    const until = this.#c.registry.state().create_blocked_until;
    return until > now ? until : undefined;
  }

  /** The announced crowd (POST /crowd) while it is due to be in. */
  announced(now: number): { joinRate: number; viewers: number } | undefined {
    const { crowd_rate, crowd_viewers, crowd_until } = this.#c.registry.state();
    return now < crowd_until ? { joinRate: crowd_rate, viewers: crowd_viewers } : undefined;
  }

  /** Whether the policy would change anything now (a load report asks before it wakes the alarm). */
  scalingNeeded(now: number): boolean {
    const input = { now, live: true, stages: this.loads(now), announced: this.announced(now) };
    const d = decideScaling(input, this.#c.config.scaling);
    // While IVS refuses new stages a wanted one is no reason to wake: the block's end is.
    const create = d.create > 0 && this.creationBlocked(now) === undefined;
    return create || d.revive.length > 0 || d.drain.length > 0 || d.delete.length > 0;
  }

  /** Runs the scaling policy and carries out its decision. Returns the stages deleted. */
  async apply(now: number): Promise<string[]> {
    const { registry, config, channels } = this.#c;
    const status = registry.state().status;
    if (status === "idle") return [];
    const decision = decideScaling(
      { now, live: status === "live", stages: this.loads(now), announced: this.announced(now) },
      config.scaling,
    );
    for (const arn of decision.revive) await this.revive(registry.stage(arn)!);
    for (const arn of decision.drain) await this.drain(registry.stage(arn)!, now);
    // After a refusal, no CreateStage until the backoff is over: not at every report, not at every waiting join.
    const create = this.creationBlocked(now) === undefined ? decision.create : 0;
    await this.#createEdges(create);
    for (const arn of decision.delete) {
      const stage = registry.stage(arn);
      if (stage) this.markForDeletion(stage, now);
    }
    const deleted = await this.deleteDue(now);
    if (create || decision.drain.length || decision.revive.length || decision.delete.length || deleted.length)
      channels.statsChanged();
    return deleted;
  }

  /**
   * `count` edge stages, several requests in flight at once (as many as the account's CreateStage
   * turns a second, IVS_CONTROL_TPS; each waits for its turn): one after another, a CreateStage's
   * round trip would hold creation to about two a second, below what a crowd needs and what IVS
   * allows. The first refusal stops the rest (creation is blocked for a while then, #refused).
   */
  async #createEdges(count: number): Promise<void> {
    let left = count;
    let refused = false;
    const worker = async () => {
      while (left > 0 && !refused) {
        left--;
        try {
          await this.#create("edge");
        } catch (error) {
          refused = true;
          // Blocked for a while now (#refused); the event log and the dashboard's warnings say why.
          console.error(`scale-up for ${this.#c.id} failed: ${(error as Error).message}`);
        }
      }
    };
    const lanes = Math.min(count, Math.max(1, Math.floor(this.#c.config.ivs.controlTps)));
    await Promise.all(Array.from({ length: lanes }, worker));
  }

  // ── the operator's stage actions ──────────────────────────────────────────

  async add(): Promise<StageRow> {
    const { maxStages } = this.#c.config.scaling;
    if (this.#c.registry.stages().filter(isActive).length >= maxStages)
      throw conflict(`The broadcast already has the maximum of ${maxStages} stages.`);
    return this.#create("edge");
  }

  async setState(arn: string, state: "ready" | "draining"): Promise<void> {
    const stage = this.require(arn);
    if (state === "draining" && stage.role === "origin")
      throw conflict("The origin stage cannot be drained while the broadcast is live.");
    if (state === "draining" && stage.state === "ready") await this.drain(stage, Date.now());
    if (state === "ready" && stage.state === "draining") await this.revive(stage);
  }

  async remove(arn: string): Promise<void> {
    const stage = this.require(arn, { deleting: true });
    if (stage.role === "origin" && this.#c.registry.state().status === "live")
      throw conflict("The origin stage cannot be deleted while the broadcast is live; end the broadcast instead.");
    const now = Date.now();
    this.markForDeletion(stage, now);
    await this.deleteDue(now, { only: stage.arn });
    const left = this.#c.registry.stage(arn);
    // Still there: IVS refused. It stays queued and is retried; the caller hears why.
    if (left) throw new BroadcastFailure(deleteFailure(left), {});
  }

  // ── one stage's life ──────────────────────────────────────────────────────

  async drain(stage: StageRow, now: number): Promise<void> {
    this.#c.registry.updateStage(stage.arn, { state: "draining", draining_since: now });
    this.#c.registry.event("stage_draining", { stageArn: stage.arn, viewers: stage.viewers });
    await this.#c.env.STAGE_SHARD.getByName(stage.arn).drain({ migrateTo: this.migrationTarget(stage.arn) });
  }

  async revive(stage: StageRow): Promise<void> {
    this.#c.registry.updateStage(stage.arn, { state: "ready", draining_since: null });
    this.#c.registry.event("stage_revived", { stageArn: stage.arn });
    await this.#c.env.STAGE_SHARD.getByName(stage.arn).revive();
  }

  /** The emptiest ready stage other than `arn`: where a drained stage's viewers go. */
  migrationTarget(arn: string): string | undefined {
    return this.#c.registry
      .realStages()
      .filter((s) => s.arn !== arn && s.state === "ready")
      .sort((a, b) => a.viewers - b.viewers)[0]?.arn;
  }

  // ── deletion: a row in `deleting`, retried until IVS confirms ────────────────

  /** Queues a stage for deletion: written before any IVS call, so a restart or a failure resumes it. */
  markForDeletion(stage: StageRow, now: number): void {
    if (stage.state === "deleting") return;
    this.#c.registry.updateStage(stage.arn, {
      state: "deleting",
      delete_attempts: 0,
      delete_next_at: now,
      delete_error: null,
    });
  }

  /**
   * Adopts for deletion a stage IVS has with this broadcast's tags that the registry does not
   * know (the cron's orphans, what a restart left behind): from now on it is retried like any.
   */
  adoptForDeletion(arn: string, now: number): void {
    if (this.#c.registry.stage(arn)) return;
    this.#c.registry.insertStage({
      arn,
      role: "edge",
      state: "deleting",
      feed: "replica",
      owned: 1,
      orphan: 1,
      events_url: "",
      whip_url: "",
      created_at: now,
    });
    this.#c.registry.updateStage(arn, { delete_next_at: now });
    this.#c.registry.event("orphan_found", { stageArn: arn });
  }

  /** The stages waiting to be deleted, and when the next try is due (for the alarm). */
  nextDeletionAt(): number | undefined {
    const due = this.#c.registry
      .stages()
      .filter((s) => s.state === "deleting" && !isPlaceholder(s))
      .map((s) => s.delete_next_at);
    return due.length > 0 ? Math.min(...due) : undefined;
  }

  /**
   * Tries every deletion that is due (or only `only`): edges before the origin, one at a
   * time through the account's budget. Returns the stages IVS confirmed gone. Never throws:
   * a failure is recorded in the row and tried again later.
   */
  async deleteDue(now: number, options: { only?: string; deadline?: number; all?: boolean } = {}): Promise<string[]> {
    const { only, deadline, all } = options;
    const due = this.#c.registry
      .stages()
      .filter((s) => s.state === "deleting" && !isPlaceholder(s))
      .filter((s) => (only ? s.arn === only : all || s.delete_next_at <= now))
      .sort((a, b) => (a.role === "origin" ? 1 : 0) - (b.role === "origin" ? 1 : 0));
    const deleted: string[] = [];
    for (const stage of due) {
      // Past the caller's deadline the rest waits for the alarm, still due.
      if (deadline !== undefined && Date.now() >= deadline) break;
      try {
        await this.#finishDelete(stage);
        deleted.push(stage.arn);
      } catch (error) {
        this.#deleteFailed(stage, error, Date.now());
      }
    }
    return deleted;
  }

  /** One try at deleting a stage: replication stopped, its viewers told (ended, or where to go), then IVS. */
  async #finishDelete(stage: StageRow): Promise<void> {
    const { registry, env, ivs, channels } = this.#c;
    const ended = registry.state().status !== "live";
    if (stage.replication === "active") {
      try {
        await this.#replication.stop(stage);
      } catch (error) {
        if (stage.delete_attempts + 1 < STOP_REPLICATION_TRIES) throw error;
        // DeleteStage ends the replica with the stage; a stop that keeps failing must not keep the stage alive.
      }
      registry.updateStage(stage.arn, { replication: "none" });
    }
    if (!stage.orphan)
      await env.STAGE_SHARD.getByName(stage.arn).close({
        ended,
        migrateTo: ended ? undefined : this.migrationTarget(stage.arn),
      });
    if (stage.owned) {
      try {
        await ivs.deleteStage(stage.arn);
      } catch (error) {
        // Gone already is what we wanted.
        if (!(error instanceof IvsError && error.kind === "not_found")) throw error;
      }
    }
    registry.removeStage(stage.arn);
    registry.event(stage.orphan ? "orphan_deleted" : "stage_deleted", {
      stageArn: stage.arn,
      role: stage.role,
      attempts: stage.delete_attempts + 1,
    });
    if (!stage.orphan)
      channels.toBroadcasters({ type: "stage_deleted", data: { stageArn: stage.arn, timestamp: iso(Date.now()) } });
  }

  #deleteFailed(stage: StageRow, error: unknown, now: number): void {
    const attempts = stage.delete_attempts + 1;
    const type = error instanceof IvsError ? error.type : error instanceof Error ? error.message : String(error);
    this.#c.registry.updateStage(stage.arn, {
      delete_attempts: attempts,
      delete_next_at: now + backoffDelay(attempts - 1, DELETE_RETRY),
      delete_error: type,
    });
    // The first failure, then one in ten: the log says it keeps failing without filling up.
    if (attempts === 1 || attempts % 10 === 0)
      this.#c.registry.event("stage_delete_failed", { stageArn: stage.arn, error: type, attempts });
    console.error(`deleting ${stage.arn} failed (try ${attempts}): ${type}`);
  }

  /** The registry dropped a stage IVS no longer has: its viewers are sent elsewhere and the studio told. */
  async forget(arn: string): Promise<void> {
    const { registry, env, channels } = this.#c;
    registry.removeStage(arn);
    await env.STAGE_SHARD.getByName(arn).close({ ended: false, migrateTo: this.migrationTarget(arn) });
    channels.toBroadcasters({ type: "stage_deleted", data: { stageArn: arn, timestamp: iso(Date.now()) } });
    registry.event("stage_vanished", { stageArn: arn });
  }

  async #adoptMaster(arn: string): Promise<StageRow> {
    const { registry, ivs, env } = this.#c;
    const { stage } = await ivs.getStage(arn).catch((error: unknown) => {
      if (!(error instanceof IvsError)) throw error;
      throw new BroadcastFailure(ivsFailure(error, `read MASTER_STAGE_ARN ${arn}`), { cause: error });
    });
    registry.insertStage({
      arn: stage.arn,
      role: "origin",
      state: "ready",
      feed: "replica",
      owned: 0,
      events_url: stage.endpoints?.events ?? "",
      whip_url: stage.endpoints?.whip ?? "",
      created_at: Date.now(),
      shards: this.#c.config.scaling.shardsPerStage,
    });
    await env.STAGE_SHARD.getByName(stage.arn).init({
      broadcastId: this.#c.id,
      stageArn: stage.arn,
      live: false,
      shards: this.#c.config.scaling.shardsPerStage,
    });
    registry.event("stage_created", { stageArn: stage.arn, role: "origin", master: true });
    return registry.stage(stage.arn)!;
  }

  // ── creation: a placeholder, a tagged request, a backoff after a refusal ─────

  /**
   * A placeholder whose CreateStage is not under way in this incarnation (it timed out, or the
   * object restarted during it) and is old enough for any request it sent to have landed.
   */
  #unresolved(now: number): StageRow[] {
    const settleMs = 2 * this.#c.config.ivs.timeoutMs;
    return this.#c.registry
      .stages()
      .filter((s) => isPlaceholder(s) && !this.#inFlight.has(s.arn) && s.created_at + settleMs <= now);
  }

  /** When a placeholder is next due to be resolved (for the alarm), if any waits. */
  nextResolutionAt(now: number): number | undefined {
    const settleMs = 2 * this.#c.config.ivs.timeoutMs;
    const waiting = this.#c.registry.stages().filter((s) => isPlaceholder(s) && !this.#inFlight.has(s.arn));
    return waiting.length > 0 ? Math.max(now, Math.min(...waiting.map((s) => s.created_at + settleMs))) : undefined;
  }

  /**
   * Placeholders whose request's fate is unknown (a CreateStage that timed out, or an object
   * restarted during one): the stage their request made, if any, is found by its request tag.
   * While live, it becomes the stage it was meant to be (no second CreateStage, no duplicate);
   * otherwise, or if an origin exists already, it is deleted. Never throws; a lookup that fails
   * is tried again at the next tick.
   */
  async resolvePlaceholders(now: number): Promise<void> {
    const { registry, ivs } = this.#c;
    for (const row of this.#unresolved(now)) {
      let made: { arn: string }[];
      try {
        made = await ivs.stagesTagged(TAG.request, row.arn);
      } catch (error) {
        console.error(`looking for the stage of request ${row.arn} failed: ${(error as Error).message}`);
        return;
      }
      registry.removeStage(row.arn);
      const [first, ...extra] = made;
      let adopted = false;
      if (first && registry.state().status === "live" && (row.role === "edge" || !registry.origin())) {
        try {
          await this.#register((await ivs.getStage(first.arn)).stage, row.role, row.feed, row.created_at);
          adopted = true;
        } catch (error) {
          console.error(`adopting ${first.arn} failed: ${(error as Error).message}`);
        }
      }
      for (const stage of adopted ? extra : made) this.adoptForDeletion(stage.arn, now);
      registry.event("placeholder_resolved", { request: row.arn, stagesFound: made.length, adopted });
    }
  }

  /** A stage IVS may have made for `request` (a timed-out or failed CreateStage): looked up by its tag. */
  async #madeFor(request: string): Promise<Stage | undefined> {
    const found = await this.#c.ivs.stagesTagged(TAG.request, request);
    if (found.length === 0) return undefined;
    // The first is kept; any other (a retry the lookup missed) is an orphan the cron deletes.
    return (await this.#c.ivs.getStage(found[0]!.arn)).stage;
  }

  /**
   * CreateStage, made safe to retry: the request carries its id as a tag. After a 5xx (IVS
   * answered, so the request is over, but it may have created the stage) the stage is looked
   * for by that tag before another is asked for. A timeout is not retried here at all: the
   * request may still land, so its placeholder waits to be resolved (resolvePlaceholders).
   */
  async #createTagged(request: string, role: "origin" | "edge"): Promise<Stage> {
    const { ivs, config } = this.#c;
    const tags = fanoutTags({ broadcastId: this.#c.id, role, deployment: config.deployment, request });
    for (let attempt = 1; ; attempt++) {
      try {
        return (await ivs.createStage({ name: stageName(this.#c.id, role), tags })).stage;
      } catch (error) {
        if (!(error instanceof IvsError && error.kind === "server") || attempt >= CREATE_ATTEMPTS) throw error;
        const made = await this.#madeFor(request);
        if (made) return made;
      }
    }
  }

  /** IVS refused a CreateStage: no other until the backoff is over, and the operator is told. */
  #refused(error: unknown, role: "origin" | "edge"): void {
    const { registry } = this.#c;
    const now = Date.now();
    const state = registry.state();
    const kind = error instanceof IvsError ? error.kind : "error";
    const failures = state.create_failures + 1;
    const waitMs = backoffDelay(failures - 1, kind === "quota" ? CREATE_BACKOFF.quota : CREATE_BACKOFF.other);
    registry.setState({
      create_failures: failures,
      create_blocked_until: now + waitMs,
      create_refusal: kind,
      create_refused_since: state.create_refused_since ?? now,
    });
    registry.event("stage_create_refused", {
      role,
      reason: kind,
      error: error instanceof IvsError ? error.type : error instanceof Error ? error.message : String(error),
      retryAt: iso(now + waitMs),
    });
  }

  async #create(role: "origin" | "edge"): Promise<StageRow> {
    const { registry, config } = this.#c;
    const now = Date.now();
    // Registered before the call, so that a decision taken meanwhile counts it. Its key is the request id.
    const request = crypto.randomUUID();
    const feed: Feed = role === "edge" && config.mode === "direct" ? "direct" : "replica";
    registry.insertStage({
      arn: request,
      placeholder: 1,
      role,
      state: "creating",
      feed,
      owned: 1,
      events_url: "",
      whip_url: "",
      created_at: now,
    });
    this.#inFlight.add(request);
    let created: Stage;
    try {
      created = await this.#createTagged(request, role);
    } catch (error) {
      this.#inFlight.delete(request);
      const ambiguous = error instanceof IvsError && (error.kind === "timeout" || error.kind === "network");
      // Unanswered: the stage may exist. The placeholder stays, to be resolved by its tag at the next tick.
      if (!ambiguous) registry.removeStage(request);
      this.#refused(error, role);
      if (!(error instanceof IvsError)) throw error;
      throw new BroadcastFailure(ivsFailure(error, "create a stage"), { cause: error });
    }
    this.#inFlight.delete(request);
    registry.removeStage(request);
    registry.setState({
      create_failures: 0,
      create_blocked_until: 0,
      create_refusal: null,
      create_refused_since: null,
    });
    return this.#register(created, role, feed, now);
  }

  /** A stage IVS created for this broadcast becomes one of its stages: registered, its shard ready, the studio told. */
  async #register(created: Stage, role: "origin" | "edge", feed: Feed, createdAt: number): Promise<StageRow> {
    const { registry, env } = this.#c;
    registry.insertStage({
      arn: created.arn,
      role,
      state: "ready",
      feed,
      owned: 1,
      events_url: created.endpoints?.events ?? "",
      whip_url: created.endpoints?.whip ?? "",
      created_at: createdAt,
      shards: this.#c.config.scaling.shardsPerStage,
    });
    if (role === "edge" && feed === "replica")
      registry.updateStage(created.arn, { replication: "pending", replication_next_at: Date.now() });
    await env.STAGE_SHARD.getByName(created.arn).init({
      broadcastId: this.#c.id,
      stageArn: created.arn,
      live: registry.publisherLive(),
      shards: this.#c.config.scaling.shardsPerStage,
    });
    registry.event("stage_created", { stageArn: created.arn, role, feed });
    const row = registry.stage(created.arn)!;
    if (role === "edge") await announce(this.#c, row);
    return row;
  }
}

/** A deletion IVS keeps refusing, as the contract names it. */
function deleteFailure(stage: StageRow): BroadcastFailure["failure"] {
  return {
    code: "IVS_BUSY",
    message: `IVS did not delete the stage yet (${stage.delete_error ?? "unknown error"}); it is queued and retried.`,
    retryAfterSeconds: Math.max(1, Math.ceil((stage.delete_next_at - Date.now()) / 1000)),
  };
}
