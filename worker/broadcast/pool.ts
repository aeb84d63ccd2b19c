import type { Feed } from "../../protocol/api.ts";
import { IvsError } from "../ivs/error.ts";
import { fanoutTags, stageName } from "../ivs/tags.ts";
import { decideScaling, type StageLoad } from "../scaling/policy.ts";
import type { BroadcastContext } from "./context.ts";
import { BroadcastFailure, conflict, ivsFailure, notFound } from "./contract.ts";
import { iso, isActive, isPlaceholder, type StageRow } from "./registry.ts";
import type { Replication } from "./replication.ts";
import { announce } from "./stage-tokens.ts";

/**
 * The broadcast's stages at IVS: the origin, edge stages created and deleted
 * as the scaling policy decides (docs/design.md, "Scaling"), drained and
 * revived, and the operator's own stage actions. Every change here runs inside
 * the object's serial queue, so two triggers never create a stage for one need.
 */

/** A shard's join rate not refreshed this recently is over. */
const RATE_FRESH_MS = 5_000;

export class StagePool {
  readonly #c: BroadcastContext;
  readonly #replication: Replication;

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

  /** Whether the policy would change anything now (a load report asks before it wakes the alarm). */
  scalingNeeded(now: number): boolean {
    const d = decideScaling({ now, live: true, stages: this.loads(now) }, this.#c.config.scaling);
    return d.create > 0 || d.revive.length > 0 || d.drain.length > 0 || d.delete.length > 0;
  }

  /** Runs the scaling policy and carries out its decision. Returns the stages deleted. */
  async apply(now: number): Promise<string[]> {
    const { registry, config, channels } = this.#c;
    const status = registry.state().status;
    if (status === "idle") return [];
    const decision = decideScaling({ now, live: status === "live", stages: this.loads(now) }, config.scaling);
    for (const arn of decision.revive) await this.revive(registry.stage(arn)!);
    for (const arn of decision.drain) await this.drain(registry.stage(arn)!, now);
    for (let i = 0; i < decision.create; i++) {
      try {
        await this.#create("edge");
      } catch (error) {
        // The next report or tick tries again; quota and IVS errors are in the event log.
        console.error(`scale-up for ${this.#c.id} failed: ${(error as Error).message}`);
        break;
      }
    }
    const deleted: string[] = [];
    for (const arn of decision.delete) {
      const stage = registry.stage(arn);
      if (!stage) continue;
      try {
        await this.delete(stage, status === "ended");
        deleted.push(arn);
      } catch (error) {
        console.error(`deleting ${arn} failed: ${(error as Error).message}`);
      }
    }
    if (decision.create || decision.drain.length || decision.revive.length || deleted.length) channels.statsChanged();
    return deleted;
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
    await this.delete(stage, false);
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

  /** Deletes a stage: replication stopped, its viewers told (ended, or where to go), then IVS. */
  async delete(stage: StageRow, ended: boolean): Promise<void> {
    const { registry, env, ivs, channels } = this.#c;
    registry.updateStage(stage.arn, { state: "deleting" });
    await this.#replication.stop(stage);
    await env.STAGE_SHARD.getByName(stage.arn).close({
      ended,
      migrateTo: ended ? undefined : this.migrationTarget(stage.arn),
    });
    if (stage.owned) {
      try {
        await ivs.deleteStage(stage.arn);
      } catch (error) {
        if (!(error instanceof IvsError && error.kind === "not_found")) {
          registry.event("stage_delete_failed", {
            stageArn: stage.arn,
            error: error instanceof Error ? error.message : String(error),
          });
          throw error;
        }
      }
    }
    registry.removeStage(stage.arn);
    registry.event("stage_deleted", { stageArn: stage.arn, role: stage.role });
    channels.toBroadcasters({ type: "stage_deleted", data: { stageArn: stage.arn, timestamp: iso(Date.now()) } });
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
    });
    await env.STAGE_SHARD.getByName(stage.arn).init({ broadcastId: this.#c.id, stageArn: stage.arn, live: false });
    registry.event("stage_created", { stageArn: stage.arn, role: "origin", master: true });
    return registry.stage(stage.arn)!;
  }

  async #create(role: "origin" | "edge"): Promise<StageRow> {
    const { registry, ivs, env, config } = this.#c;
    const now = Date.now();
    // Registered before the call, so that a decision taken meanwhile counts it.
    const placeholder = crypto.randomUUID();
    const feed: Feed = role === "edge" && config.mode === "direct" ? "direct" : "replica";
    registry.insertStage({
      arn: placeholder,
      placeholder: 1,
      role,
      state: "creating",
      feed,
      owned: 1,
      events_url: "",
      whip_url: "",
      created_at: now,
    });
    let created;
    try {
      ({ stage: created } = await ivs.createStage({
        name: stageName(this.#c.id, role),
        tags: fanoutTags({ broadcastId: this.#c.id, role, deployment: config.deployment }),
      }));
    } catch (error) {
      registry.removeStage(placeholder);
      registry.event("stage_create_failed", { role, error: error instanceof Error ? error.message : String(error) });
      if (!(error instanceof IvsError)) throw error;
      throw new BroadcastFailure(ivsFailure(error, "create a stage"), { cause: error });
    }
    registry.removeStage(placeholder);
    registry.insertStage({
      arn: created.arn,
      role,
      state: "ready",
      feed,
      owned: 1,
      events_url: created.endpoints?.events ?? "",
      whip_url: created.endpoints?.whip ?? "",
      created_at: now,
    });
    if (role === "edge" && feed === "replica")
      registry.updateStage(created.arn, { replication: "pending", replication_next_at: Date.now() });
    await env.STAGE_SHARD.getByName(created.arn).init({
      broadcastId: this.#c.id,
      stageArn: created.arn,
      live: registry.publisherLive(),
    });
    registry.event("stage_created", { stageArn: created.arn, role, feed });
    const row = registry.stage(created.arn)!;
    if (role === "edge") await announce(this.#c, row);
    return row;
  }
}
