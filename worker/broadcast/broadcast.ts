import { DurableObject } from "cloudflare:workers";
import type { PublisherStats, Stage, Stats } from "../../protocol/api.ts";
import {
  BroadcasterClientMessage,
  StatsClientMessage,
  type BroadcasterServerMessage,
  type Feed,
  type PublishState,
  type StatsServerMessage,
} from "../../protocol/messages.ts";
import { loadConfig, type Config } from "../config.ts";
import { IvsClient } from "../ivs/client.ts";
import { IvsError } from "../ivs/error.ts";
import { fanoutTags, stageName } from "../ivs/tags.ts";
import type { StageSummary } from "../ivs/types.ts";
import { decideScaling } from "../scaling/policy.ts";
import { stageIdOf } from "../tokens/claims.ts";
import { issueParticipantToken, tokenIssuerFor, type IssuedToken } from "../tokens/participant-token.ts";
import { Registry, type StageRow } from "./registry.ts";

/**
 * One broadcast (SPEC §3): its stage registry, the publisher session, the
 * scaling decisions, replication of the publisher into every stage, the
 * broadcaster and stats WebSockets, viewing history and snapshots. Addressed
 * by broadcast id. It is not on the join path: the Worker reads its routing
 * table (cached for a second per isolate) and admits viewers at the shards,
 * which report their load here, coalesced.
 */

export interface EndedSession {
  participantId: string;
  userId: string;
  joinedAt: number;
  leftAt: number;
  reason: string;
}

export interface LoadReply {
  live: boolean;
  totalViewers: number;
}

export interface RoutingStage {
  arn: string;
  state: StageRow["state"];
  role: StageRow["role"];
  viewers: number;
  capacity: number;
  endpoints: { events: string; whip: string };
}

export interface RoutingTable {
  status: "idle" | "live" | "ended";
  stages: RoutingStage[];
  /** Whether another stage can still be added (below the maximum). */
  canGrow: boolean;
  /** Stages being created right now. */
  creating: number;
}

export interface PublisherGrant extends IssuedToken {
  whipEndpoint: string;
  userId: string;
}

export type StageView = Stage;

/**
 * Failures the caller must tell apart. They cross the RPC boundary as an
 * Outcome, since an error thrown across it keeps its message but not its class.
 */
export type Outcome<T> = { ok: true; value: T } | { ok: false; kind: BroadcastError["kind"]; message: string };

export class BroadcastError extends Error {
  readonly kind: "not_found" | "conflict" | "ivs";
  constructor(kind: BroadcastError["kind"], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.kind = kind;
  }
}

const TICK_MS = 5_000;
const REPLICA_CHECK_MS = 30_000;
const STATS_PUSH_MS = 250;
const CREATING_STALE_MS = 120_000;
const RATE_FRESH_MS = 5_000;

export class Broadcast extends DurableObject<Env> {
  readonly #registry: Registry;
  #config: Config | undefined;
  #ivs: IvsClient | undefined;
  /** Registry-changing work runs one at a time: no two stages created for one need. */
  #queue: Promise<unknown> = Promise.resolve();
  #evaluationQueued = false;
  #statsTimer: ReturnType<typeof setTimeout> | undefined;
  #lastPushed = "";

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#registry = new Registry(ctx.storage.sql);
  }

  get #cfg(): Config {
    this.#config ??= loadConfig(this.env);
    return this.#config;
  }

  get #client(): IvsClient {
    this.#ivs ??= new IvsClient(this.#cfg.ivs);
    return this.#ivs;
  }

  get #id(): string {
    const id = this.ctx.id.name ?? this.#registry.get("broadcast_id");
    if (!id) throw new Error("a Broadcast object must be addressed by name");
    return id;
  }

  async #outcome<T>(work: () => T | Promise<T>): Promise<Outcome<T>> {
    try {
      return { ok: true, value: await work() };
    } catch (error) {
      if (error instanceof BroadcastError) return { ok: false, kind: error.kind, message: error.message };
      throw error;
    }
  }

  #requireStage(arn: string, options: { deleting?: boolean } = {}): StageRow {
    const stage = this.#registry.stage(arn);
    if (!stage || (stage.state === "deleting" && !options.deleting)) {
      throw new BroadcastError("not_found", `Stage ${arn} is not part of this broadcast.`);
    }
    return stage;
  }

  #serial<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(work, work);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  // ── the join path reads this, cached per isolate ─────────────────────────

  routingTable(): RoutingTable {
    const stages = this.#registry.stages().filter((s) => !s.arn.startsWith("creating:"));
    const live = stages.filter((s) => s.state !== "deleting");
    return {
      status: this.#status(),
      stages: live.map((s) => ({
        arn: s.arn,
        state: s.state,
        role: s.role,
        viewers: s.viewers,
        capacity: this.#cfg.scaling.capacity,
        endpoints: { events: s.events_url, whip: s.whip_url },
      })),
      canGrow:
        this.#status() === "live" &&
        this.#registry.stages().filter((s) => s.state !== "deleting").length < this.#cfg.scaling.maxStages,
      creating: this.#registry.stages().filter((s) => s.state === "creating").length,
    };
  }

  /** A join found every stage full: scale now rather than at the next report. */
  async requestCapacity(): Promise<void> {
    await this.#evaluateSoon();
  }

  // ── the publisher ────────────────────────────────────────────────────────

  /**
   * The broadcaster's token for the origin. With `participantId` of the
   * current publisher this is a renewal: the same participant (self-signed
   * tokens), so the replicas keep following it.
   */
  publisherToken(input: { userId: string; participantId?: string }): Promise<Outcome<PublisherGrant>> {
    return this.#outcome(() =>
      this.#serial(async () => {
        this.#registry.set("broadcast_id", this.#id);
        const origin = await this.#ensureOrigin();
        const minutes = this.#cfg.tokenMinutes.publisher;
        const previous = this.#registry.publisher();
        const renewing =
          input.participantId !== undefined &&
          previous?.participant_id === input.participantId &&
          previous.stage_arn === origin.arn
            ? input.participantId
            : undefined;
        const issued = await this.#issue(origin, ["PUBLISH", "SUBSCRIBE"], minutes, input.userId, renewing);
        const now = Date.now();
        this.#registry.setPublisher({
          participant_id: issued.participantId,
          user_id: input.userId,
          stage_arn: origin.arn,
          state: "idle",
          since: now,
          expires_at: Date.parse(issued.expiresAt),
        });
        // A new publisher participant: every replica must follow it.
        if (previous?.participant_id !== issued.participantId) {
          for (const stage of this.#registry.stages()) {
            if (stage.role === "edge" && stage.feed === "replica" && stage.replication !== "failed") {
              this.#registry.updateStage(stage.arn, {
                replication: "pending",
                replication_attempts: 0,
                replication_next_at: now,
              });
            }
          }
        }
        this.#registry.event("publisher_token", { participantId: issued.participantId, userId: input.userId });
        await this.#arm(now);
        this.#statsChanged();
        return { ...issued, whipEndpoint: origin.whip_url, userId: input.userId };
      }),
    );
  }

  /** A publish token for one stage (the origin, or a direct-fed stage). */
  stageToken(input: { stageArn: string; userId?: string; participantId?: string }): Promise<Outcome<IssuedToken>> {
    return this.#outcome(() => {
      const stage = this.#requireStage(input.stageArn);
      return this.#issue(stage, ["PUBLISH"], this.#cfg.tokenMinutes.publisher, input.userId, input.participantId);
    });
  }

  /** Publish tokens for every stage the studio must publish to itself: the origin and the direct-fed ones. */
  async publisherTokens(): Promise<{ stageArn: string; token: string; participantId: string; feed: Feed }[]> {
    const stages = this.#registry
      .stages()
      .filter((s) => (s.state === "ready" || s.state === "draining") && (s.role === "origin" || s.feed === "direct"));
    return Promise.all(
      stages.map(async (s) => {
        const t = await this.#issue(s, ["PUBLISH"], this.#cfg.tokenMinutes.publisher);
        return {
          stageArn: s.arn,
          token: t.token,
          participantId: t.participantId,
          feed: s.role === "origin" ? ("replica" as const) : s.feed,
        };
      }),
    );
  }

  setPublishState(input: { stageArn: string; state: PublishState; participantId?: string }): Promise<Outcome<void>> {
    return this.#outcome(async () => {
      const stage = this.#requireStage(input.stageArn, { deleting: true });
      this.#registry.updateStage(stage.arn, { publish_state: input.state });
      const now = Date.now();
      if (stage.role === "origin") {
        const publisher = this.#registry.publisher();
        if (publisher && publisher.state !== input.state) {
          this.#registry.setPublisherState(input.state, now);
          this.#registry.event("publish_state", { state: input.state });
          if (input.state === "publishing") {
            // Publishing now: try every pending replica at once instead of waiting for its backoff.
            for (const s of this.#registry.stages()) {
              if (s.replication === "pending")
                this.#registry.updateStage(s.arn, { replication_attempts: 0, replication_next_at: now });
            }
            await this.#arm(now);
          }
        }
      }
      this.#statsChanged();
    });
  }

  publisherInfo() {
    return {
      publisher: this.#publisherView(),
      originStageArn: this.#registry.origin()?.arn ?? null,
      isPublisherLive: this.#publisherLive(),
    };
  }

  #publisherView(): PublisherStats | null {
    const p = this.#registry.publisher();
    return p
      ? {
          participantId: p.participant_id,
          userId: p.user_id,
          stageArn: p.stage_arn,
          state: p.state,
          since: iso(p.since),
          expiresAt: iso(p.expires_at),
        }
      : null;
  }

  /** Ends the broadcast: viewers are told, and every stage Fanout created is deleted. */
  end(): Promise<{ deleted: string[] }> {
    return this.#serial(async () => {
      if (this.#status() !== "live") return { deleted: [] };
      const now = Date.now();
      this.#registry.set("status", "ended");
      this.#registry.set("ended_at", String(now));
      if (this.#registry.publisher()) this.#registry.setPublisherState("stopped", now);
      this.#registry.event("ended", {});
      this.#toBroadcasters({ type: "ended", data: { timestamp: iso(now) } });
      await this.#directory("ended");
      const deleted = await this.#apply(now);
      this.#statsChanged();
      return { deleted };
    });
  }

  // ── load reports from the shards ─────────────────────────────────────────

  async reportLoad(report: {
    stageArn: string;
    viewers: number;
    joinRate: number;
    ended: EndedSession[];
  }): Promise<LoadReply> {
    const stage = this.#registry.stage(report.stageArn);
    if (report.ended.length > 0) this.#registry.recordSessions(report.stageArn, report.ended);
    if (stage)
      this.#registry.updateStage(stage.arn, {
        viewers: report.viewers,
        join_rate: report.joinRate,
        load_reported_at: Date.now(),
      });
    this.#statsChanged();
    if (this.#status() === "live" && this.#scalingNeeded()) await this.#arm(Date.now());
    return { live: this.#publisherLive(), totalViewers: this.#totalViewers() };
  }

  // ── stats and history ────────────────────────────────────────────────────

  stats(): Stats {
    const stages = this.#views();
    return {
      broadcastId: this.#id,
      status: this.#status(),
      totalViewers: this.#totalViewers(),
      activeStages: stages.filter((s) => s.state === "ready" || s.state === "draining").length,
      isPublisherLive: this.#publisherLive(),
      publisher: this.#publisherView(),
      // The stats carry each stage without its endpoints and drain details (StatsSchema).
      stages: stages.map(({ replicationError: _e, endpoints: _p, drainingSince: _d, ...stage }) => stage),
      startedAt: this.#registry.get("started_at") ? iso(Number(this.#registry.get("started_at"))) : null,
      endedAt: this.#registry.get("ended_at") ? iso(Number(this.#registry.get("ended_at"))) : null,
    };
  }

  stages(): StageView[] {
    return this.#views();
  }

  stage(arn: string): Promise<Outcome<StageView>> {
    return this.#outcome(() => this.#view(arn));
  }

  #view(arn: string): StageView {
    const view = this.#views().find((s) => s.stageArn === arn);
    if (!view) throw new BroadcastError("not_found", `Stage ${arn} is not part of this broadcast.`);
    return view;
  }

  /** Accepts a full stage ARN or its id (the part after `stage/`). */
  resolveStage(arnOrId: string): string | undefined {
    return this.#registry.stages().find((s) => s.arn === arnOrId || stageIdOf(s.arn) === arnOrId)?.arn;
  }

  history(userId: string) {
    return this.#registry.sessionsOf(userId).map((s) => ({
      participantId: s.participant_id,
      stageArn: s.stage_arn,
      joinedAt: iso(s.joined_at),
      leftAt: iso(s.left_at),
      durationSeconds: Math.round((s.left_at - s.joined_at) / 1000),
      reason: s.reason,
    }));
  }

  stageStats(input: { stageArn: string; days: number }) {
    const since = Date.now() - input.days * 86_400_000;
    const sessions = this.#registry.stageSessionsSince(input.stageArn, since);
    const byDay = new Map<string, { sessions: number; users: Set<string>; seconds: number }>();
    for (const s of sessions) {
      const day = iso(s.left_at).slice(0, 10);
      const bucket = byDay.get(day) ?? { sessions: 0, users: new Set<string>(), seconds: 0 };
      bucket.sessions++;
      bucket.users.add(s.user_id);
      bucket.seconds += (s.left_at - s.joined_at) / 1000;
      byDay.set(day, bucket);
    }
    const totalSeconds = sessions.reduce((sum, s) => sum + (s.left_at - s.joined_at) / 1000, 0);
    return {
      stageArn: input.stageArn,
      days: input.days,
      currentViewers: this.#registry.stage(input.stageArn)?.viewers ?? 0,
      sessions: sessions.length,
      uniqueViewers: new Set(sessions.map((s) => s.user_id)).size,
      averageWatchSeconds: sessions.length ? Math.round(totalSeconds / sessions.length) : 0,
      daily: [...byDay].sort().map(([day, b]) => ({
        day,
        sessions: b.sessions,
        uniqueViewers: b.users.size,
        watchSeconds: Math.round(b.seconds),
      })),
    };
  }

  snapshots(input: { hours: number }) {
    return this.#registry.snapshots(Date.now() - input.hours * 3_600_000);
  }

  events(input: { limit: number }) {
    return this.#registry.events(input.limit);
  }

  // ── operator actions on stages (the seed's /api/stage routes) ────────────

  createStage(): Promise<Outcome<StageView>> {
    return this.#outcome(() =>
      this.#serial(async () => {
        if (this.#status() !== "live") await this.#ensureOrigin();
        const active = this.#registry.stages().filter((s) => s.state !== "deleting").length;
        if (active >= this.#cfg.scaling.maxStages)
          throw new BroadcastError(
            "conflict",
            `The broadcast already has the maximum of ${this.#cfg.scaling.maxStages} stages.`,
          );
        const row = await this.#createStage("edge");
        await this.#arm(Date.now());
        return this.#view(row.arn);
      }),
    );
  }

  updateStage(input: { stageArn: string; state: "ready" | "draining" }): Promise<Outcome<StageView>> {
    return this.#outcome(() =>
      this.#serial(async () => {
        const stage = this.#requireStage(input.stageArn);
        if (input.state === "draining" && stage.role === "origin")
          throw new BroadcastError("conflict", "The origin stage cannot be drained while the broadcast is live.");
        if (input.state === "draining" && stage.state === "ready") await this.#drain(stage, Date.now());
        if (input.state === "ready" && stage.state === "draining") await this.#revive(stage);
        return this.#view(stage.arn);
      }),
    );
  }

  deleteStage(input: { stageArn: string }): Promise<Outcome<void>> {
    return this.#outcome(() =>
      this.#serial(async () => {
        const stage = this.#requireStage(input.stageArn, { deleting: true });
        if (stage.role === "origin" && this.#status() === "live")
          throw new BroadcastError(
            "conflict",
            "The origin stage cannot be deleted while the broadcast is live; end the broadcast instead.",
          );
        await this.#deleteStage(stage, false);
      }),
    );
  }

  startReplication(input: { stageArn: string }): Promise<Outcome<StageView>> {
    return this.#outcome(() =>
      this.#serial(async () => {
        const stage = this.#requireStage(input.stageArn);
        if (stage.role === "origin")
          throw new BroadcastError(
            "conflict",
            "The origin stage is where the publisher publishes; it is not replicated into.",
          );
        this.#registry.updateStage(stage.arn, {
          feed: "replica",
          replication: "pending",
          replication_attempts: 0,
          replication_next_at: Date.now(),
          replication_error: null,
        });
        await this.#replicate(Date.now(), stage.arn);
        await this.#arm(Date.now());
        return this.#view(stage.arn);
      }),
    );
  }

  stopReplication(input: { stageArn: string }): Promise<Outcome<StageView>> {
    return this.#outcome(() =>
      this.#serial(async () => {
        const stage = this.#requireStage(input.stageArn, { deleting: true });
        await this.#stopReplica(stage);
        this.#registry.updateStage(stage.arn, { replication: "none" });
        return this.#view(stage.arn);
      }),
    );
  }

  // ── the cron ─────────────────────────────────────────────────────────────

  /**
   * Reconciles the registry with what IVS has: `stages` are the stages IVS
   * lists with this broadcast's tags, `listedAt` when the listing began.
   * Orphans (tagged, not registered) are deleted; registered stages that IVS
   * no longer has are dropped. Then snapshots and retention. Idempotent.
   */
  reconcile(input: {
    stages: StageSummary[];
    listedAt: number;
  }): Promise<{ orphansDeleted: string[]; dropped: string[] }> {
    return this.#serial(async () => {
      const listed = new Set(input.stages.map((s) => s.arn));
      const registered = this.#registry.stages();
      const orphansDeleted: string[] = [];
      for (const stage of input.stages) {
        if (registered.some((r) => r.arn === stage.arn)) continue;
        try {
          await this.#client.deleteStage(stage.arn);
        } catch (error) {
          if (!(error instanceof IvsError && error.kind === "not_found")) throw error;
        }
        orphansDeleted.push(stage.arn);
        this.#registry.event("orphan_deleted", { stageArn: stage.arn });
      }
      const dropped: string[] = [];
      for (const row of registered) {
        if (row.arn.startsWith("creating:")) {
          if (Date.now() - row.created_at > CREATING_STALE_MS) this.#registry.removeStage(row.arn);
          continue;
        }
        // Only what IVS should already have listed, and only once IVS confirms it is gone.
        if (listed.has(row.arn) || row.created_at >= input.listedAt || !row.owned) continue;
        const gone = await this.#client.getStage(row.arn).then(
          () => false,
          (error: unknown) => {
            if (error instanceof IvsError && error.kind === "not_found") return true;
            throw error;
          },
        );
        if (!gone) continue;
        this.#registry.removeStage(row.arn);
        await this.env.STAGE_SHARD.getByName(row.arn).close({
          ended: false,
          migrateTo: this.#migrationTarget(row.arn),
        });
        this.#toBroadcasters({ type: "stage_deleted", data: { stageArn: row.arn, timestamp: iso(Date.now()) } });
        this.#registry.event("stage_vanished", { stageArn: row.arn });
        dropped.push(row.arn);
      }
      this.#housekeeping(Date.now());
      if (orphansDeleted.length || dropped.length) this.#statsChanged();
      return { orphansDeleted, dropped };
    });
  }

  #housekeeping(now: number): void {
    if (this.#status() === "live" && now - this.#registry.lastSnapshotAt() >= this.#cfg.snapshotIntervalMs) {
      const stats = this.stats();
      this.#registry.snapshot(now, stats.totalViewers, stats.activeStages, stats.isPublisherLive);
    }
    this.#registry.prune(now - this.#cfg.retentionMs);
  }

  // ── alarms: only while live, or while stages are left to delete ──────────

  override async alarm(): Promise<void> {
    await this.#serial(() => this.#tick());
  }

  async #tick(): Promise<void> {
    const now = Date.now();
    await this.#apply(now);
    if (this.#status() === "live") {
      await this.#replicate(now);
      await this.#checkReplicas(now);
      await this.#endIfIdle(now);
    }
    const next = this.#nextWake(now);
    if (next !== undefined) await this.ctx.storage.setAlarm(next);
  }

  #nextWake(now: number): number | undefined {
    const stages = this.#registry.stages();
    if (this.#status() !== "live") return stages.length > 0 ? now + TICK_MS : undefined;
    const retries = stages.filter((s) => s.replication === "pending").map((s) => s.replication_next_at);
    return Math.max(now + 250, Math.min(now + TICK_MS, ...retries));
  }

  async #arm(at: number): Promise<void> {
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > at) await this.ctx.storage.setAlarm(at);
  }

  async #evaluateSoon(): Promise<void> {
    if (this.#evaluationQueued) return;
    this.#evaluationQueued = true;
    await this.#serial(async () => {
      this.#evaluationQueued = false;
      await this.#apply(Date.now());
    });
  }

  #scalingNeeded(): boolean {
    const d = decideScaling({ now: Date.now(), live: true, stages: this.#loads() }, this.#cfg.scaling);
    return d.create > 0 || d.revive.length > 0 || d.drain.length > 0 || d.delete.length > 0;
  }

  #loads() {
    const now = Date.now();
    return this.#registry.stages().map((s) => ({
      // A shard reports while viewers come and go; a rate not refreshed lately is over.
      joinRate: now - s.load_reported_at <= RATE_FRESH_MS ? s.join_rate : 0,
      arn: s.arn,
      role: s.role,
      state: s.state,
      viewers: s.viewers,
      createdAt: s.created_at,
      drainingSince: s.draining_since ?? undefined,
    }));
  }

  /** Runs the scaling policy and carries out its decision. Returns the stages deleted. */
  async #apply(now: number): Promise<string[]> {
    const status = this.#status();
    if (status === "idle") return [];
    const decision = decideScaling({ now, live: status === "live", stages: this.#loads() }, this.#cfg.scaling);
    for (const arn of decision.revive) await this.#revive(this.#registry.stage(arn)!);
    for (const arn of decision.drain) await this.#drain(this.#registry.stage(arn)!, now);
    for (let i = 0; i < decision.create; i++) {
      try {
        await this.#createStage("edge");
      } catch (error) {
        // The next report or tick tries again; quota and IVS errors are in the event log.
        console.error(`scale-up for ${this.#id} failed: ${(error as Error).message}`);
        break;
      }
    }
    const deleted: string[] = [];
    for (const arn of decision.delete) {
      const stage = this.#registry.stage(arn);
      if (!stage) continue;
      try {
        await this.#deleteStage(stage, status === "ended");
        deleted.push(arn);
      } catch (error) {
        console.error(`deleting ${arn} failed: ${(error as Error).message}`);
      }
    }
    if (decision.create || decision.drain.length || decision.revive.length || deleted.length) this.#statsChanged();
    return deleted;
  }

  // ── stages ───────────────────────────────────────────────────────────────

  async #ensureOrigin(): Promise<StageRow> {
    const existing = this.#registry.origin();
    if (existing && this.#status() === "live") return existing;
    const now = Date.now();
    if (this.#status() !== "live") {
      // A new broadcast session: fresh start time, no publisher yet.
      this.#registry.set("status", "live");
      this.#registry.set("started_at", String(now));
      this.#registry.set("ended_at", null);
      this.#registry.event("started", {});
      await this.#directory("live");
    }
    if (existing) return existing;
    if (this.#cfg.masterStageArn) {
      const { stage } = await this.#client.getStage(this.#cfg.masterStageArn).catch((error: unknown) => {
        throw new BroadcastError("ivs", `MASTER_STAGE_ARN ${this.#cfg.masterStageArn} could not be read from IVS.`, {
          cause: error,
        });
      });
      this.#registry.insertStage({
        arn: stage.arn,
        role: "origin",
        state: "ready",
        feed: "replica",
        owned: 0,
        events_url: stage.endpoints?.events ?? "",
        whip_url: stage.endpoints?.whip ?? "",
        created_at: now,
      });
      await this.env.STAGE_SHARD.getByName(stage.arn).init({ broadcastId: this.#id, stageArn: stage.arn, live: false });
      this.#registry.event("stage_created", { stageArn: stage.arn, role: "origin", master: true });
      return this.#registry.stage(stage.arn)!;
    }
    return this.#createStage("origin");
  }

  async #createStage(role: "origin" | "edge"): Promise<StageRow> {
    const now = Date.now();
    // Registered before the call so that a concurrent decision counts it.
    const placeholder = `creating:${crypto.randomUUID()}`;
    const feed: Feed = role === "edge" && this.#cfg.mode === "direct" ? "direct" : "replica";
    this.#registry.insertStage({
      arn: placeholder,
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
      ({ stage: created } = await this.#client.createStage({
        name: stageName(this.#id, role),
        tags: fanoutTags({ broadcastId: this.#id, role, deployment: this.#cfg.deployment }),
      }));
    } catch (error) {
      this.#registry.removeStage(placeholder);
      this.#registry.event("stage_create_failed", { role, error: (error as Error).message });
      throw new BroadcastError("ivs", `Could not create a stage: ${(error as Error).message}`, { cause: error });
    }
    this.#registry.removeStage(placeholder);
    this.#registry.insertStage({
      arn: created.arn,
      role,
      state: "ready",
      feed,
      owned: 1,
      events_url: created.endpoints?.events ?? "",
      whip_url: created.endpoints?.whip ?? "",
      created_at: now,
    });
    if (role === "edge" && feed === "replica") {
      this.#registry.updateStage(created.arn, { replication: "pending", replication_next_at: Date.now() });
    }
    await this.env.STAGE_SHARD.getByName(created.arn).init({
      broadcastId: this.#id,
      stageArn: created.arn,
      live: this.#publisherLive(),
    });
    this.#registry.event("stage_created", { stageArn: created.arn, role, feed });
    const row = this.#registry.stage(created.arn)!;
    if (role === "edge") await this.#announce(row);
    return row;
  }

  /** Tells the studio about a new edge stage; a direct-fed one comes with its publish token. */
  async #announce(stage: StageRow): Promise<void> {
    const timestamp = iso(Date.now());
    if (stage.feed === "direct") {
      const token = await this.#issue(stage, ["PUBLISH"], this.#cfg.tokenMinutes.publisher);
      this.#toBroadcasters({
        type: "stage_created",
        data: {
          stageArn: stage.arn,
          feed: "direct",
          token: token.token,
          participantId: token.participantId,
          timestamp,
        },
      });
    } else {
      this.#toBroadcasters({ type: "stage_created", data: { stageArn: stage.arn, feed: "replica", timestamp } });
    }
  }

  async #drain(stage: StageRow, now: number): Promise<void> {
    this.#registry.updateStage(stage.arn, { state: "draining", draining_since: now });
    this.#registry.event("stage_draining", { stageArn: stage.arn, viewers: stage.viewers });
    await this.env.STAGE_SHARD.getByName(stage.arn).drain({ migrateTo: this.#migrationTarget(stage.arn) });
  }

  async #revive(stage: StageRow): Promise<void> {
    this.#registry.updateStage(stage.arn, { state: "ready", draining_since: null });
    this.#registry.event("stage_revived", { stageArn: stage.arn });
    await this.env.STAGE_SHARD.getByName(stage.arn).revive();
  }

  /** The emptiest ready stage other than `arn`: where a drained stage's viewers go. */
  #migrationTarget(arn: string): string | undefined {
    return this.#registry
      .stages()
      .filter((s) => s.arn !== arn && s.state === "ready")
      .sort((a, b) => a.viewers - b.viewers)[0]?.arn;
  }

  async #deleteStage(stage: StageRow, ended: boolean): Promise<void> {
    this.#registry.updateStage(stage.arn, { state: "deleting" });
    await this.#stopReplica(stage);
    await this.env.STAGE_SHARD.getByName(stage.arn).close({
      ended,
      migrateTo: ended ? undefined : this.#migrationTarget(stage.arn),
    });
    if (stage.owned) {
      try {
        await this.#client.deleteStage(stage.arn);
      } catch (error) {
        if (!(error instanceof IvsError && error.kind === "not_found")) {
          this.#registry.event("stage_delete_failed", { stageArn: stage.arn, error: (error as Error).message });
          throw error;
        }
      }
    }
    this.#registry.removeStage(stage.arn);
    this.#registry.event("stage_deleted", { stageArn: stage.arn, role: stage.role });
    this.#toBroadcasters({ type: "stage_deleted", data: { stageArn: stage.arn, timestamp: iso(Date.now()) } });
  }

  // ── replication ──────────────────────────────────────────────────────────

  /**
   * Starts replication into every pending replica stage whose retry is due.
   * IVS refuses until the publisher actually publishes (not connected: 404,
   * connected but not publishing: 409): those are retried with backoff. Any
   * other refusal (quota, region, access) puts the stage on a direct feed.
   */
  async #replicate(now: number, only?: string): Promise<void> {
    const publisher = this.#registry.publisher();
    const origin = this.#registry.origin();
    if (!publisher || !origin) return;
    const due = this.#registry
      .stages()
      .filter(
        (s) =>
          s.role === "edge" &&
          s.feed === "replica" &&
          s.replication === "pending" &&
          (s.state === "ready" || s.state === "draining"),
      )
      .filter((s) => (only ? s.arn === only : s.replication_next_at <= now));
    for (const stage of due) {
      try {
        await this.#client.startParticipantReplication({
          sourceStageArn: origin.arn,
          destinationStageArn: stage.arn,
          participantId: publisher.participant_id,
          reconnectWindowSeconds: this.#cfg.replicaReconnectWindowSeconds,
        });
        this.#registry.updateStage(stage.arn, {
          replication: "active",
          replication_error: null,
          replication_attempts: 0,
        });
        this.#registry.event("replication_started", { stageArn: stage.arn });
      } catch (error) {
        if (!(error instanceof IvsError)) throw error;
        if (error.kind === "conflict" && (await this.#replicaActive(origin.arn, publisher.participant_id, stage.arn))) {
          this.#registry.updateStage(stage.arn, {
            replication: "active",
            replication_error: null,
            replication_attempts: 0,
          });
          continue;
        }
        if (
          error.kind === "not_found" ||
          error.kind === "conflict" ||
          (error.retryable && stage.replication_attempts < 8)
        ) {
          const attempts = stage.replication_attempts + 1;
          const wait = Math.min(15_000, 500 * 2 ** Math.min(attempts, 5));
          this.#registry.updateStage(stage.arn, {
            replication_attempts: attempts,
            replication_next_at: now + wait,
            replication_error: error.type,
          });
          continue;
        }
        await this.#fallBackToDirect(stage, error);
      }
    }
    this.#statsChanged();
  }

  async #fallBackToDirect(stage: StageRow, error: IvsError): Promise<void> {
    this.#registry.updateStage(stage.arn, { feed: "direct", replication: "failed", replication_error: error.type });
    this.#registry.event("replication_failed", { stageArn: stage.arn, error: error.type, fallback: "direct" });
    await this.#announce(this.#registry.stage(stage.arn)!);
  }

  async #replicaActive(origin: string, participantId: string, destination: string): Promise<boolean> {
    const { replicas } = await this.#client.listParticipantReplicas({ sourceStageArn: origin, participantId });
    return replicas.some((r) => r.destinationStageArn === destination && r.replicationState === "ACTIVE");
  }

  /** Replicas stop when the publisher is gone past its reconnect window: notice it and retry. */
  async #checkReplicas(now: number): Promise<void> {
    const last = Number(this.#registry.get("replicas_checked_at") ?? 0);
    const publisher = this.#registry.publisher();
    const origin = this.#registry.origin();
    const active = this.#registry.stages().filter((s) => s.replication === "active");
    if (!publisher || !origin || active.length === 0 || now - last < REPLICA_CHECK_MS) return;
    this.#registry.set("replicas_checked_at", String(now));
    const { replicas } = await this.#client.listParticipantReplicas({
      sourceStageArn: origin.arn,
      participantId: publisher.participant_id,
    });
    const live = new Set(replicas.filter((r) => r.replicationState === "ACTIVE").map((r) => r.destinationStageArn));
    for (const stage of active) {
      if (!live.has(stage.arn))
        this.#registry.updateStage(stage.arn, {
          replication: "pending",
          replication_attempts: 0,
          replication_next_at: now,
        });
    }
  }

  async #stopReplica(stage: StageRow): Promise<void> {
    const publisher = this.#registry.publisher();
    const origin = this.#registry.origin();
    if (stage.replication !== "active" || !publisher || !origin) return;
    try {
      await this.#client.stopParticipantReplication({
        sourceStageArn: origin.arn,
        destinationStageArn: stage.arn,
        participantId: publisher.participant_id,
      });
    } catch (error) {
      if (!(error instanceof IvsError && error.kind === "not_found")) throw error;
    }
    this.#registry.event("replication_stopped", { stageArn: stage.arn });
  }

  /**
   * A broadcast whose publisher stopped and did not come back ends by itself:
   * stages cost money. IVS has the last word first: an encoder that never
   * reports its state here (OBS over WHIP, an integrator on the seed API) may
   * be publishing all the same.
   */
  async #endIfIdle(now: number): Promise<void> {
    const publisher = this.#registry.publisher();
    const started = Number(this.#registry.get("started_at") ?? now);
    const idleSince = publisher ? (publisher.state === "publishing" ? now : publisher.since) : started;
    if (now - idleSince < this.#cfg.publisherIdleEndMs) return;
    let publishing: boolean;
    try {
      publishing = await this.#publishingAtIvs();
    } catch (error) {
      // Never end a broadcast because IVS could not be asked; ask again at the next tick.
      console.error(`publisher check for ${this.#id} failed: ${(error as Error).message}`);
      return;
    }
    if (publishing) {
      if (publisher) this.#registry.setPublisherState("publishing", now);
      this.#registry.event("publishing_seen_at_ivs", {});
      this.#statsChanged();
      return;
    }
    this.#registry.event("idle_timeout", { idleSince: iso(idleSince) });
    this.ctx.waitUntil(this.end());
  }

  async #publishingAtIvs(): Promise<boolean> {
    const origin = this.#registry.origin();
    if (!origin) return false;
    const { stage } = await this.#client.getStage(origin.arn);
    if (!stage.activeSessionId) return false;
    const { participants } = await this.#client.listParticipants({
      stageArn: origin.arn,
      sessionId: stage.activeSessionId,
      filterByPublished: true,
    });
    return participants.some((p) => p.state === "CONNECTED" && p.replicationType !== "REPLICA");
  }

  // ── tokens ───────────────────────────────────────────────────────────────

  #issue(
    stage: StageRow,
    capabilities: ("PUBLISH" | "SUBSCRIBE")[],
    minutes: number,
    userId?: string,
    participantId?: string,
  ): Promise<IssuedToken> {
    return issueParticipantToken(tokenIssuerFor(this.#cfg, this.#client), {
      stage: { arn: stage.arn, endpoints: { events: stage.events_url, whip: stage.whip_url } },
      capabilities,
      durationMinutes: minutes,
      userId,
      participantId,
    });
  }

  // ── sockets: stats (seed 003) and broadcaster (seed 004) ─────────────────

  override async fetch(request: Request): Promise<Response> {
    if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket")
      return new Response("expected a WebSocket", { status: 426 });
    // The Worker has checked the caller; it says which channel this is.
    const role = request.headers.get("x-fanout-channel") === "broadcaster" ? "broadcaster" : "stats";
    this.#registry.set("broadcast_id", this.#id);
    const { 0: client, 1: server } = new WebSocketPair();
    this.ctx.acceptWebSocket(server, [role]);
    server.serializeAttachment({ role, subscribed: false });
    return new Response(null, { status: 101, webSocket: client });
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    const { role } = ws.deserializeAttachment() as { role: "stats" | "broadcaster"; subscribed: boolean };
    let data: unknown;
    try {
      data = JSON.parse(typeof message === "string" ? message : new TextDecoder().decode(message));
    } catch {
      send(ws, { type: "error", data: { message: "Messages must be JSON." } });
      return;
    }
    if (role === "stats") {
      const parsed = StatsClientMessage.safeParse(data);
      if (!parsed.success)
        return send(ws, {
          type: "error",
          data: { message: 'Send {"action":"subscribe","channel":"stats"}.' },
        } satisfies StatsServerMessage);
      const subscribed = parsed.data.action === "subscribe";
      ws.serializeAttachment({ role, subscribed });
      send(ws, { type: subscribed ? "subscribed" : "unsubscribed", channel: "stats" } satisfies StatsServerMessage);
      if (subscribed) send(ws, { type: "stats_update", data: this.stats() } satisfies StatsServerMessage);
      return;
    }
    const parsed = BroadcasterClientMessage.safeParse(data);
    if (!parsed.success)
      return send(ws, { type: "error", data: { message: "Unknown message." } } satisfies BroadcasterServerMessage);
    const msg = parsed.data;
    try {
      switch (msg.type) {
        case "publish_state": {
          const outcome = await this.setPublishState(msg.data);
          if (!outcome.ok) send(ws, { type: "error", data: { message: outcome.message } });
          break;
        }
        case "end":
          await this.end();
          break;
        default:
          msg satisfies never;
      }
    } catch (error) {
      // One bad message must not take the object down.
      send(ws, {
        type: "error",
        data: { message: error instanceof BroadcastError ? error.message : "Could not apply the message." },
      });
    }
  }

  override webSocketClose(ws: WebSocket, code: number): void {
    try {
      ws.close(code === 1005 || code === 1006 ? 1000 : code, "bye");
    } catch (error) {
      if (!(error instanceof TypeError)) throw error;
    }
  }

  #toBroadcasters(message: BroadcasterServerMessage): void {
    for (const ws of this.ctx.getWebSockets("broadcaster")) send(ws, message);
  }

  /** Coalesced: at most one push every STATS_PUSH_MS, to stats sockets and to the shards' viewers. */
  #statsChanged(): void {
    if (this.#statsTimer) return;
    this.#statsTimer = setTimeout(() => {
      this.#statsTimer = undefined;
      const stats = this.stats();
      for (const ws of this.ctx.getWebSockets("stats")) {
        if ((ws.deserializeAttachment() as { subscribed: boolean }).subscribed)
          send(ws, { type: "stats_update", data: stats } satisfies StatsServerMessage);
      }
      const audience = JSON.stringify([stats.totalViewers, stats.isPublisherLive]);
      if (audience !== this.#lastPushed) {
        this.#lastPushed = audience;
        for (const stage of stats.stages) {
          if (stage.state === "ready" || stage.state === "draining") {
            this.ctx.waitUntil(
              this.env.STAGE_SHARD.getByName(stage.stageArn).setAudience({
                total: stats.totalViewers,
                live: stats.isPublisherLive,
              }),
            );
          }
        }
      }
    }, STATS_PUSH_MS);
  }

  // ── small reads ──────────────────────────────────────────────────────────

  #status(): "idle" | "live" | "ended" {
    return (this.#registry.get("status") as "live" | "ended" | undefined) ?? "idle";
  }

  #publisherLive(): boolean {
    return this.#status() === "live" && this.#registry.publisher()?.state === "publishing";
  }

  #totalViewers(): number {
    return this.#registry.stages().reduce((sum, s) => sum + (s.state === "deleting" ? 0 : s.viewers), 0);
  }

  #views(): StageView[] {
    return this.#registry
      .stages()
      .filter((s) => !s.arn.startsWith("creating:"))
      .map((s) => ({
        stageArn: s.arn,
        stageId: stageIdOf(s.arn),
        role: s.role,
        state: s.state,
        feed: s.feed,
        viewers: s.viewers,
        capacity: this.#cfg.scaling.capacity,
        publishState: s.publish_state,
        replication: s.replication,
        replicationError: s.replication_error,
        endpoints: { events: s.events_url, whip: s.whip_url },
        createdAt: iso(s.created_at),
        drainingSince: s.draining_since ? iso(s.draining_since) : null,
      }));
  }

  async #directory(status: "live" | "ended"): Promise<void> {
    await this.env.DIRECTORY.getByName("directory").record({
      broadcastId: this.#id,
      status,
      startedAt: Number(this.#registry.get("started_at") ?? Date.now()),
      endedAt: status === "ended" ? Date.now() : null,
    });
  }
}

const iso = (ms: number) => new Date(ms).toISOString();

function send(ws: WebSocket, message: StatsServerMessage | BroadcasterServerMessage): void {
  try {
    ws.send(JSON.stringify(message));
  } catch (error) {
    if (!(error instanceof TypeError)) throw error;
  }
}
