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
import { PublisherSession } from "./publisher.ts";
import { reconcile, type ReconcileInput, type ReconcileOutcome } from "./reconcile.ts";
import { Registry } from "./registry.ts";
import { Replication } from "./replication.ts";
import { Tickets } from "./tickets.ts";
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

/** The alarm's period while live (or while stages are left to delete). */
const TICK_MS = 5_000;

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
      () => this.#context.config.limits.socketsPerBroadcast,
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
    return this.#views.routingTable();
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

  // ── the publisher ────────────────────────────────────────────────────────

  publisherToken(input: { userId: string; participantId?: string }): Promise<Result<PublisherGrant>> {
    return resultOf(() => this.#serial(() => this.#publisher.token(input)));
  }

  stageToken(input: { stageArn: string; userId?: string; participantId?: string }): Promise<Result<IssuedToken>> {
    return resultOf(() => this.#publisher.stageToken(input));
  }

  publisherTokens(): Promise<Result<PublishToken[]>> {
    return resultOf(() => this.#publisher.publishTokens());
  }

  setPublishState(input: { stageArn: string; state: PublishState }): Promise<Result<void>> {
    return resultOf(() => this.#publisher.setPublishState(input));
  }

  publisherInfo(): PublisherInfo {
    return this.#views.publisherInfo();
  }

  /** Ends the broadcast: viewers are told, and every stage Fanout created is deleted. */
  end(): Promise<Result<{ deleted: string[] }>> {
    return resultOf(() =>
      this.#serial(async () => {
        const now = Date.now();
        if (!(await this.#lifecycle.end(now))) return { deleted: [] };
        const deleted = await this.#pool.apply(now);
        this.#channels.statsChanged();
        return { deleted };
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
    return resultOf(() => this.#serial(work));
  }

  // ── the cron ─────────────────────────────────────────────────────────────

  reconcile(input: ReconcileInput): Promise<Result<ReconcileOutcome>> {
    return this.#change(() => reconcile(this.#context, this.#pool, this.#views, input));
  }

  // ── alarms: only while live, or while stages are left to delete ──────────

  override async alarm(): Promise<void> {
    await this.#serial(() => this.#tick());
  }

  async #tick(): Promise<void> {
    const now = Date.now();
    await this.#pool.apply(now);
    if (this.#views.status() === "live") {
      await this.#replication.replicate(now);
      await this.#replication.check(now);
      if (await this.#publisher.idleTooLong(now)) this.ctx.waitUntil(this.end());
    }
    const next = this.#nextWake(now);
    if (next !== undefined) await this.ctx.storage.setAlarm(next);
  }

  #nextWake(now: number): number | undefined {
    const stages = this.#registry.stages();
    if (this.#views.status() !== "live") return stages.length > 0 ? now + TICK_MS : undefined;
    const retries = stages.filter((s) => s.replication === "pending").map((s) => s.replication_next_at);
    return Math.max(now + 250, Math.min(now + TICK_MS, ...retries));
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
