import { DurableObject } from "cloudflare:workers";
import type { PublishState, Stage, Stats } from "../../protocol/api.ts";
import { sendJson } from "../sockets.ts";
import type { IssuedToken } from "../tokens/participant-token.ts";
import { Channels } from "./channels.ts";
import { ObjectContext } from "./context.ts";
import {
  conflict,
  resultOf,
  type LoadReply,
  type LoadReport,
  type PublisherGrant,
  type PublisherInfo,
  type PublishToken,
  type Result,
  type RoutingTable,
} from "./contract.ts";
import { Lifecycle } from "./lifecycle.ts";
import { StagePool } from "./pool.ts";
import { PublisherSession, type IvsEventOutcome, type IvsStageEvent } from "./publisher.ts";
import { reconcile, type ReconcileInput, type ReconcileOutcome } from "./reconcile.ts";
import { Registry, type Encoder } from "./registry.ts";
import { Replication } from "./replication.ts";
import { Tickets } from "./tickets.ts";
import { TICK_MS } from "./timing.ts";
import { accrue } from "./usage.ts";
import { Views } from "./views.ts";

/**
 * One broadcast (docs/design.md, "The Broadcast object"): one object per
 * broadcast id, its one consistency domain. This file is its surface: the RPC
 * methods the Worker, the shards and the cron call, the alarm and the socket
 * handlers. The work is done by the modules beside it: the stage pool,
 * replication, the publisher session, the lifecycle, reconcile, the channels
 * and the read views. It is not on the join path: the Worker reads its routing
 * table (cached per isolate) and admits viewers at the shards, which report
 * their load here, coalesced.
 *
 * Every method that can fail answers a Result (contract.ts): the HTTP layer
 * maps a failure to its response in one place.
 */

/**
 * Set at the start of every tick, before any IVS call: if the tick fails or the object is
 * restarted in the middle of it, the alarm still comes back (workerd gives up on a failing
 * alarm after a few retries, and a deletion must never depend on that).
 */
const SAFETY_WAKE_MS = 30_000;
/** A placeholder whose request's fate is unknown is looked for at IVS no more often than this. */
const PLACEHOLDER_RETRY_MS = 10_000;
/** An ended broadcast wakes for its retention no more often than this. */
const RETENTION_WAKE_MIN_MS = 60_000;
/** How long `end` deletes stages before it answers; the rest is deleted by the alarm (and `end` again resumes it). */
const END_DELETES_MS = 5_000;

export class Broadcast extends DurableObject<Env> {
  readonly #registry: Registry;
  readonly #context: ObjectContext;
  readonly #channels: Channels;
  readonly #views: Views;
  readonly #pool: StagePool;
  readonly #replication: Replication;
  readonly #lifecycle: Lifecycle;
  readonly #publisher: PublisherSession;
  readonly #tickets: Tickets;
  /** Registry-changing work runs one at a time: no two stages created for one need. */
  #queue: Promise<unknown> = Promise.resolve();
  #evaluationQueued = false;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#registry = new Registry(ctx.storage.sql);
    this.#context = new ObjectContext(ctx, env, this.#registry);
    this.#views = new Views(this.#context);
    this.#tickets = new Tickets(ctx.storage.sql);
    this.#channels = this.#context.channels = new Channels(
      ctx,
      env,
      () => this.#views.stats(),
      // One object's sockets: the broadcaster's tabs, bounded like a relay's.
      () => this.#context.config.limits.statsSocketsPerRelay,
      () => this.#relaysToPush(),
    );
    this.#replication = new Replication(this.#context);
    this.#pool = new StagePool(this.#context, this.#replication);
    this.#lifecycle = new Lifecycle(this.#context);
    this.#publisher = new PublisherSession(this.#context, this.#pool, this.#replication, this.#lifecycle);
  }

  #serial<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(work, work);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  // ── the join path (cached per isolate) and the shards ────────────────────

  routingTable(): RoutingTable {
    const table = this.#views.routingTable();
    const now = Date.now();
    const blockedUntil = this.#pool.creationBlocked(now);
    return {
      ...table,
      canGrow: table.canGrow && blockedUntil === undefined,
      ...(blockedUntil !== undefined && { growBlockedForSeconds: Math.ceil((blockedUntil - now) / 1000) }),
    };
  }

  /** A join found every stage full: scale now rather than at the next report. */
  async requestCapacity(): Promise<void> {
    if (this.#evaluationQueued) return;
    this.#evaluationQueued = true;
    await this.#serial(async () => {
      this.#evaluationQueued = false;
      await this.#pool.apply(Date.now());
    });
  }

  async reportLoad(report: LoadReport): Promise<LoadReply> {
    const now = Date.now();
    accrue(this.#context, now);
    if (report.ended.length > 0) this.#registry.recordSessions(report.stageArn, report.ended);
    if (this.#registry.stage(report.stageArn))
      this.#registry.updateStage(report.stageArn, {
        viewers: report.viewers,
        join_rate: report.joinRate,
        load_reported_at: now,
      });
    this.#channels.statsChanged();
    if (this.#views.status() === "live" && this.#pool.scalingNeeded(now)) await this.#context.arm(now);
    return { live: this.#views.publisherLive(), totalViewers: this.#views.totalViewers() };
  }

  /**
   * A crowd the operator expects (POST /crowd): its arrival rate counts as the join rate from now
   * until it is due to be in, so the pool is ready before it comes. The policy runs at once.
   */
  announceCrowd(input: { viewers: number; withinSeconds: number; startsInSeconds: number }): Promise<{
    viewers: number;
    joinRate: number;
    until: string;
    stagesWanted: number;
  }> {
    return this.#serial(async () => {
      const now = Date.now();
      const until = now + (input.startsInSeconds + input.withinSeconds) * 1000;
      const joinRate = input.viewers / input.withinSeconds;
      this.#registry.setState({ crowd_rate: joinRate, crowd_viewers: input.viewers, crowd_until: until });
      this.#registry.event("crowd_announced", {
        viewers: input.viewers,
        joinRate,
        until: new Date(until).toISOString(),
      });
      await this.#pool.apply(now);
      await this.#rearm(Date.now());
      return {
        viewers: input.viewers,
        joinRate,
        until: new Date(until).toISOString(),
        stagesWanted: this.#registry.stages().filter((s) => s.state === "creating" || s.state === "ready").length,
      };
    });
  }

  // ── the stats relays (relay/stats-relay.ts) ──────────────────────────────

  /** A relay's socket count: the relays pushed to, and how many the routing table spreads new sockets over. */
  relayLoad(input: { index: number; sockets: number }): void {
    this.#registry.relayLoad(input.index, input.sockets, Date.now());
  }

  /** The relays that told the broadcast they hold sockets (a relay reports its first socket at once). */
  #relaysToPush(): number[] {
    return this.#registry.relays().map((r) => r.index);
  }

  /** A ticket presented on a relay's socket: single use, like one presented here. */
  redeemTicket(ticket: string): Promise<boolean> {
    return this.#tickets.redeem(ticket);
  }

  /** Stats updates since this instance started, and pushes to relays and shards this second (bounded whatever their number). */
  pushes(): { updates: number; thisSecond: number } {
    return this.#channels.pushes();
  }

  // ── the publisher ────────────────────────────────────────────────────────

  publisherToken(input: {
    userId: string;
    participantId?: string;
    encoder?: Encoder;
  }): Promise<Result<PublisherGrant>> {
    return resultOf(() => this.#serial(() => this.#publisher.token(input)));
  }

  stageToken(input: { stageArn: string; userId?: string; participantId?: string }): Promise<Result<IssuedToken>> {
    return resultOf(() => this.#publisher.stageToken(input));
  }

  publisherTokens(): Promise<Result<PublishToken[]>> {
    return resultOf(() => this.#publisher.publishTokens());
  }

  setPublishState(input: { stageArn: string; state: PublishState }): Promise<Result<void>> {
    accrue(this.#context, Date.now());
    return resultOf(() => this.#publisher.setPublishState(input));
  }

  /** An IVS participant event from EventBridge (POST /api/ivs/events): the publisher's state, as IVS saw it change. */
  ivsEvent(event: IvsStageEvent): Promise<Result<IvsEventOutcome>> {
    accrue(this.#context, Date.now());
    return resultOf(() => this.#publisher.ivsEvent(event));
  }

  publisherInfo(): PublisherInfo {
    return this.#views.publisherInfo();
  }

  /**
   * Ends the broadcast: viewers are told, and every stage Fanout created is deleted. Idempotent:
   * called again, it resumes the deletions that are left. Every stage is queued for deletion and
   * the alarm armed before the first IVS call, so a failure or a restart from there on is resumed
   * by the alarm; `pending` lists what IVS has not confirmed deleted yet.
   */
  end(): Promise<Result<{ deleted: string[]; pending: string[] }>> {
    return resultOf(() =>
      this.#serial(async () => {
        const now = Date.now();
        accrue(this.#context, now);
        await this.#lifecycle.end(now);
        if (this.#views.status() !== "ended") return { deleted: [], pending: [] };
        for (const stage of this.#registry.realStages()) this.#pool.markForDeletion(stage, now);
        await this.#context.arm(now + SAFETY_WAKE_MS);
        // Every deletion left, due or not: `end` again is the operator asking to resume now.
        const deleted = await this.#pool.deleteDue(now, { deadline: now + END_DELETES_MS, all: true });
        await this.#rearm(Date.now());
        this.#channels.statsChanged();
        return { deleted, pending: this.#registry.realStages().map((s) => s.arn) };
      }),
    );
  }

  /**
   * A single-use ticket for a socket with the operator's rights (tickets.ts). The operator
   * opening the studio prepares the broadcast: it exists from now on (the Directory says so),
   * so its sockets connect before it starts.
   */
  async issueTicket(): Promise<{ ticket: string; expiresIn: number }> {
    if (this.#registry.state().status === "idle") {
      this.#registry.setState({ broadcast_id: this.#context.id });
      await this.env.DIRECTORY.getByName("directory").prepare({ broadcastId: this.#context.id });
    }
    return this.#tickets.issue();
  }

  // ── reads ────────────────────────────────────────────────────────────────

  stats(): Stats {
    return this.#views.stats();
  }

  stages(): Stage[] {
    return this.#views.stages();
  }

  stage(arn: string): Promise<Result<Stage>> {
    return resultOf(() => this.#views.stage(arn));
  }

  resolveStage(arnOrId: string): string | undefined {
    return this.#views.resolveStage(arnOrId);
  }

  /** Whether `arn` was one of this broadcast's stages and has been deleted lately. */
  /** Whether `arn` was one of this broadcast's stages lately: its shard count, 0 if not. */
  hadStage(arn: string): number {
    return this.#registry.hadStage(arn);
  }

  history(userId: string) {
    return this.#views.history(userId);
  }

  stageStats(input: { stageArn: string; days: number }) {
    return this.#views.stageStats(input);
  }

  snapshots(input: { hours: number }) {
    return this.#views.snapshots(input);
  }

  events(input: { limit: number }) {
    return this.#views.events(input);
  }

  // ── the operator's stage actions ───────────────────────────────────────────

  createStage(): Promise<Result<Stage>> {
    return this.#change(async () => {
      if (this.#views.status() !== "live") {
        await this.#lifecycle.begin(Date.now());
        await this.#pool.ensureOrigin();
      }
      const row = await this.#pool.add();
      await this.#context.arm(Date.now());
      return this.#views.stage(row.arn);
    });
  }

  updateStage(input: { stageArn: string; state: "ready" | "draining" }): Promise<Result<Stage>> {
    return this.#change(async () => {
      await this.#pool.setState(input.stageArn, input.state);
      return this.#views.stage(input.stageArn);
    });
  }

  deleteStage(input: { stageArn: string }): Promise<Result<void>> {
    return this.#change(() => this.#pool.remove(input.stageArn));
  }

  startReplication(input: { stageArn: string }): Promise<Result<Stage>> {
    return this.#change(async () => {
      const stage = this.#pool.require(input.stageArn);
      if (stage.role === "origin")
        throw conflict("The origin stage is where the publisher publishes; it is not replicated into.");
      await this.#replication.start(stage, Date.now());
      await this.#context.arm(Date.now());
      return this.#views.stage(stage.arn);
    });
  }

  stopReplication(input: { stageArn: string }): Promise<Result<Stage>> {
    return this.#change(async () => {
      const stage = this.#pool.require(input.stageArn, { deleting: true });
      await this.#replication.stop(stage);
      this.#registry.updateStage(stage.arn, { replication: "none" });
      return this.#views.stage(stage.arn);
    });
  }

  #change<T>(work: () => Promise<T>): Promise<Result<T>> {
    return resultOf(() =>
      this.#serial(async () => {
        accrue(this.#context, Date.now());
        const result = await work();
        await this.#rearm(Date.now());
        return result;
      }),
    );
  }

  // ── the cron ─────────────────────────────────────────────────────────────

  reconcile(input: ReconcileInput): Promise<Result<ReconcileOutcome>> {
    return this.#change(() => reconcile(this.#context, this.#pool, this.#views, input));
  }

  // ── alarms: while live, while stages are left to delete, and for retention ───

  override async alarm(): Promise<void> {
    await this.#serial(() => this.#tick());
  }

  /** One tick. Each step on its own: one failing IVS call never stops the others, nor the next tick. */
  async #tick(): Promise<void> {
    const now = Date.now();
    await this.ctx.storage.setAlarm(now + SAFETY_WAKE_MS);
    accrue(this.#context, now);
    // Placeholders first: a stage a timed-out request made is adopted before the policy asks for another.
    await this.#step("placeholders", () => this.#pool.resolvePlaceholders(now));
    await this.#step("scaling and deletions", () => this.#pool.apply(now));
    if (this.#views.status() === "live") {
      await this.#step("encoder state", () => this.#publisher.followEncoder(now));
      await this.#step("replication", () => this.#replication.replicate(now));
      await this.#step("replica check", () => this.#replication.check(now));
      await this.#step("idle check", async () => {
        if (await this.#publisher.idleTooLong(now)) this.ctx.waitUntil(this.end());
      });
    } else if (this.#views.status() === "ended") {
      await this.#step("retention", async () => {
        if (this.#registry.prune(now - this.#context.config.retentionMs) > 0)
          this.#registry.event("history_expired", {
            before: new Date(now - this.#context.config.retentionMs).toISOString(),
          });
      });
    }
    const next = this.#nextWake(Date.now());
    if (next === undefined) await this.ctx.storage.deleteAlarm();
    else await this.ctx.storage.setAlarm(next);
  }

  async #step(name: string, work: () => Promise<unknown>): Promise<void> {
    try {
      await work();
    } catch (error) {
      console.error(`${this.#context.id}: ${name} failed: ${(error as Error).message}`);
    }
  }

  /** Makes sure the alarm comes back for whatever is left to do (never later than it is set already). */
  async #rearm(now: number): Promise<void> {
    const next = this.#nextWake(now);
    if (next !== undefined) await this.#context.arm(next);
  }

  /**
   * When the object has work next: the next deletion try, a placeholder to resolve, the live
   * tick and replication retries, or (once ended) the moment its oldest history expires.
   */
  #nextWake(now: number): number | undefined {
    const wakes: number[] = [];
    const deletion = this.#pool.nextDeletionAt();
    if (deletion !== undefined) wakes.push(deletion);
    const resolution = this.#pool.nextResolutionAt(now);
    if (resolution !== undefined) wakes.push(Math.max(resolution, now + PLACEHOLDER_RETRY_MS / 10));
    const status = this.#views.status();
    if (status === "live") {
      wakes.push(now + TICK_MS);
      for (const s of this.#registry.stages()) if (s.replication === "pending") wakes.push(s.replication_next_at);
    } else if (status === "ended") {
      const oldest = this.#registry.oldestHistory();
      if (oldest !== undefined)
        wakes.push(Math.max(oldest + this.#context.config.retentionMs, now + RETENTION_WAKE_MIN_MS));
    }
    return wakes.length > 0 ? Math.max(now + 250, Math.min(...wakes)) : undefined;
  }

  // ── sockets: stats and broadcaster ─────────────────────────────────────────

  override async fetch(request: Request): Promise<Response> {
    this.#registry.setState({ broadcast_id: this.#context.id });
    return this.#channels.accept(request);
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    try {
      await this.#channels.receive(ws, message, {
        publishState: (data) => this.setPublishState(data),
        end: () => this.end(),
        redeemTicket: (ticket) => this.#tickets.redeem(ticket),
      });
    } catch (error) {
      // One bad message must not take the object down.
      console.error(`socket message failed: ${(error as Error).message}`);
      sendJson(ws, { type: "error", data: { message: "Could not apply the message." } });
    }
  }

  override webSocketClose(ws: WebSocket, code: number): void {
    this.#channels.close(ws, code);
  }
}
