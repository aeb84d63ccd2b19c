import { DurableObject } from "cloudflare:workers";
import { CLOSE, VIEWER_PING, VIEWER_PONG, type ViewerServerMessage } from "../../protocol/messages.ts";
import { loadConfig, type Config } from "../config.ts";
import type { EndedSession, LoadReply } from "../broadcast/contract.ts";
import { RATE_FRESH_MS } from "../broadcast/timing.ts";
import { completeClose } from "../sockets.ts";
import { migrate } from "../storage/migrations.ts";
import { StateRow } from "../storage/state-row.ts";
import type { Grant } from "../tokens/proof.ts";
import { reportAt, reportIsUrgent, seatFor, shardCapacity, shardName } from "./admission.ts";
import { Grants } from "./grants.ts";
import { MIGRATIONS, type ShardRow, type ShardState } from "./schema.ts";
import { HELLO_TIMEOUT_MS, ViewerSockets } from "./viewer-sockets.ts";

/**
 * The viewers of one stage, or of one share of its seats (docs/design.md, "Presence"): admission
 * against capacity, viewer sessions, HTTP heartbeats, viewer WebSockets (Hibernation API: presence
 * with no periodic requests), the sweep of silent viewers, and load reports, coalesced to at most
 * one a second (at once when the stage crosses a threshold). A stage's seats are spread over
 * `shards` objects of at most SEATS_PER_SHARD seats (shard/admission.ts), so no object sees every
 * join or every heartbeat of a broadcast, nor of a stage a crowd fills. The first (the head,
 * addressed by the stage ARN) reports the stage to the broadcast and passes on what the broadcast
 * tells the stage; the others report to it.
 *
 * A seat exists only for a token the join path minted (admit records its
 * grant); every later call as that viewer proves it with a token the shard
 * granted it (grants.ts), and acts on that one participant only.
 */

/** Why a shard would not take (or keep) a viewer. `unproven`: the token given is not one this participant holds. */
export type Refusal = "full" | "draining" | "closed" | "unknown" | "unproven";

export type Admission =
  { admitted: true; viewers: number; capacity: number } | { admitted: false; reason: Refusal; viewers: number };

/** A call as one participant: who, and the digest of the token that proves it. */
export interface AsParticipant {
  participantId: string;
  userId: string;
  proof: string;
}

export interface ViewerSession {
  participantId: string;
  userId: string;
  joinedAt: string;
  lastSeen: string;
  connected: boolean;
}

export interface HeartbeatReply {
  /**
   * `present`: seen; `readmitted`: it had been swept (a throttled tab, a phone asleep) and has its
   * seat again; `unknown`: not on this stage and no seat for it here (full, draining, closed);
   * `unproven`: the token is not this participant's.
   */
  outcome: "present" | "readmitted" | "unknown" | "unproven";
  viewers: number;
  state: ShardState;
  /** Set while the stage drains: where the viewer should go. */
  migrateTo?: string;
  /** The first heartbeat this viewer sent since the stage began draining: the one answered with a token for `migrateTo`. */
  firstNotice?: boolean;
}

export class StageShard extends DurableObject<Env> {
  readonly #sql: SqlStorage;
  readonly #row: StateRow<ShardRow>;
  readonly #grants: Grants;
  readonly #sockets: ViewerSockets;
  #config: Config | undefined;
  /** When the alarm is due, as set in storage (null: none). Read once at start, then kept here. */
  #alarmAt: number | null = null;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#sql = ctx.storage.sql;
    migrate(this.#sql, MIGRATIONS);
    this.#row = new StateRow<ShardRow>(this.#sql, "shard");
    this.#grants = new Grants(this.#sql);
    this.#sockets = new ViewerSockets(ctx, {
      admitted: (participantId) => this.#present(participantId),
      proves: (participantId, proof) => this.#grants.proves({ participantId, proof }),
      connected: (ws, participantId) => this.#connected(ws, participantId),
      left: (participantId) => this.#end(participantId, "left"),
    });
    // Viewers ping to keep their socket alive; the runtime answers without waking this object.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(VIEWER_PING, VIEWER_PONG));
    void ctx.blockConcurrencyWhile(async () => {
      this.#alarmAt = await ctx.storage.getAlarm();
    });
  }

  get #cfg(): Config {
    this.#config ??= loadConfig(this.env);
    return this.#config;
  }

  // ── set up by the broadcast ──────────────────────────────────────────────

  async init(input: {
    broadcastId: string;
    stageArn: string;
    live: boolean;
    shards?: number;
    index?: number;
  }): Promise<void> {
    const shards = input.shards ?? 1;
    const index = input.index ?? 0;
    this.#row.set({
      broadcast_id: input.broadcastId,
      stage_arn: input.stageArn,
      live: input.live ? 1 : 0,
      shards,
      idx: index,
    });
    if (index === 0) await this.#forward((part, i) => part.init({ ...input, shards, index: i }));
  }

  /** The head passes on to the stage's other shards (none when the stage has one). */
  async #forward(call: (part: DurableObjectStub<StageShard>, index: number) => Promise<unknown>): Promise<void> {
    const { idx, shards, stage_arn } = this.#row.get();
    if (idx !== 0 || shards <= 1 || !stage_arn) return;
    const parts = Array.from({ length: shards - 1 }, (_, i) => i + 1);
    await Promise.all(parts.map((i) => call(this.env.STAGE_SHARD.getByName(shardName(stage_arn, i)), i)));
  }

  /** This shard's seats: the stage's capacity shared out over its shards. */
  #capacity(): number {
    const { shards, idx } = this.#row.get();
    return shardCapacity(this.#cfg.scaling.capacity, shards, idx);
  }

  /** The stage's viewers as the head knows them: its own and the others' last reports. */
  #stageViewers(own = this.#count()): number {
    return own + this.#sql.exec<{ n: number }>("SELECT COALESCE(SUM(viewers), 0) AS n FROM parts").one().n;
  }

  /**
   * Another shard of this stage reports (the head's): its count and join rate, and its ended
   * sessions, which go on to the broadcast with the head's own. At once to the broadcast when the
   * stage crosses a threshold. The answer is what the broadcast last said (audience, live).
   */
  shardLoad(input: { index: number; viewers: number; joinRate: number; ended: EndedSession[] }): LoadReply {
    const before = this.#stageViewers();
    this.#sql.exec(
      "INSERT OR REPLACE INTO parts (idx, viewers, join_rate, reported_at) VALUES (?, ?, ?, ?)",
      input.index,
      input.viewers,
      input.joinRate,
      Date.now(),
    );
    for (const session of input.ended) this.#ended(session);
    const { capacity, scaleUpAt } = this.#cfg.scaling;
    this.#report(reportIsUrgent(before, this.#stageViewers(), capacity, scaleUpAt));
    const { live, audience } = this.#row.get();
    return { live: live === 1, totalViewers: audience ?? this.#stageViewers() };
  }

  // ── the join path ────────────────────────────────────────────────────────

  /** A join: the participant the join path minted a token for takes a seat; the token's grant is its proof from now on. */
  admit(input: { participantId: string; userId: string; grant: Grant; moving?: boolean }): Admission {
    const admission = this.#seat(input);
    if (admission.admitted) this.#grants.record(input.participantId, input.userId, input.grant);
    return admission;
  }

  /** A seat on this stage, if it takes viewers and has room. */
  #seat(input: { participantId: string; userId: string; moving?: boolean }): Admission {
    const state = this.#state();
    const viewers = this.#count();
    if (!this.#row.get().stage_arn) return { admitted: false, reason: "unknown", viewers };
    const capacity = this.#capacity();
    const refusal = seatFor(state, viewers, capacity);
    if (refusal) return { admitted: false, reason: refusal, viewers };
    const now = Date.now();
    this.#sql.exec(
      `INSERT INTO viewers (participant_id, user_id, joined_at, last_seen) VALUES (?, ?, ?, ?)
       ON CONFLICT (participant_id) DO UPDATE SET last_seen = excluded.last_seen`,
      input.participantId,
      input.userId,
      now,
      now,
    );
    // Arrivals, for the join rate the policy provisions ahead on. A viewer moving off a draining stage
    // is not one: its seat was counted already, and counting it would have the policy revive the stage it leaves.
    if (!input.moving) this.#row.set({ admitted: this.#row.get().admitted + 1 });
    this.#changed(viewers, viewers + 1);
    return { admitted: true, viewers: viewers + 1, capacity };
  }

  /** Whether the caller holds one of this participant's live tokens (the API-token renewal asks before minting). */
  proves(input: AsParticipant): boolean {
    return this.#grants.proves(input);
  }

  // ── presence over HTTP (clients without the viewer socket) ────────────────

  heartbeat(input: AsParticipant): HeartbeatReply {
    const { state, migrate_to } = this.#row.get();
    const reply = {
      viewers: this.#count(),
      state,
      ...(state === "draining" && migrate_to && { migrateTo: migrate_to }),
    };
    if (!this.#grants.proves(input)) return { outcome: "unproven", ...reply };
    const { rowsWritten } = this.#sql.exec(
      "UPDATE viewers SET last_seen = ? WHERE participant_id = ?",
      Date.now(),
      input.participantId,
    );
    this.#armSweep();
    if (rowsWritten === 0) {
      // Swept while still watching: the token proves it, so it takes a seat again if this stage
      // serves and has room, and is counted again. Otherwise the caller sends it elsewhere.
      const seat = this.#seat(input);
      return seat.admitted
        ? { outcome: "readmitted", ...reply, viewers: seat.viewers }
        : { outcome: "unknown", ...reply };
    }
    const firstNotice =
      state === "draining" &&
      this.#sql.exec("UPDATE viewers SET told = 1 WHERE participant_id = ? AND told = 0", input.participantId)
        .rowsWritten > 0;
    return { outcome: "present", ...reply, ...(firstNotice && { firstNotice }) };
  }

  /** The viewer is gone: that one participant, never every session of its user id. */
  leave(input: AsParticipant): { outcome: "left" | "unknown" | "unproven" } {
    if (!this.#grants.proves(input)) return { outcome: "unproven" };
    if (!this.#present(input.participantId)) return { outcome: "unknown" };
    for (const ws of this.#sockets.proven(input.participantId)) ws.close(1000, "left");
    this.#end(input.participantId, "left");
    return { outcome: "left" };
  }

  /**
   * A token renewal with self-signed tokens: the same participant, a new token. Only the holder
   * of one of its live tokens, and only while it is on this stage; the new token's grant is
   * recorded so that it proves from now on.
   */
  renew(input: AsParticipant & { grant: Grant }): Admission {
    const refusal = this.#asPresent(input);
    if (refusal) return refusal;
    this.#grants.record(input.participantId, input.userId, input.grant);
    this.#sql.exec("UPDATE viewers SET last_seen = ? WHERE participant_id = ?", Date.now(), input.participantId);
    return { admitted: true, viewers: this.#count(), capacity: this.#capacity() };
  }

  /** A viewer back after a blip, proving itself with its token: admitted again (if there is room) when it was swept meanwhile. */
  rejoin(input: AsParticipant): Admission {
    if (!this.#grants.proves(input)) return { admitted: false, reason: "unproven", viewers: this.#count() };
    if (this.#present(input.participantId)) {
      this.#sql.exec("UPDATE viewers SET last_seen = ? WHERE participant_id = ?", Date.now(), input.participantId);
      return { admitted: true, viewers: this.#count(), capacity: this.#capacity() };
    }
    return this.#seat(input);
  }

  #asPresent(input: AsParticipant): Admission | undefined {
    if (!this.#grants.proves(input)) return { admitted: false, reason: "unproven", viewers: this.#count() };
    if (!this.#present(input.participantId)) return { admitted: false, reason: "unknown", viewers: this.#count() };
    return undefined;
  }

  #present(participantId: string): boolean {
    return this.#sql.exec("SELECT 1 FROM viewers WHERE participant_id = ?", participantId).toArray().length > 0;
  }

  viewers(): ViewerSession[] {
    return this.#sql
      .exec<{ participant_id: string; user_id: string; joined_at: number; last_seen: number; connected: number }>(
        "SELECT * FROM viewers ORDER BY joined_at",
      )
      .toArray()
      .map((r) => ({
        participantId: r.participant_id,
        userId: r.user_id,
        joinedAt: new Date(r.joined_at).toISOString(),
        lastSeen: new Date(r.last_seen).toISOString(),
        connected: r.connected === 1,
      }));
  }

  // ── told by the broadcast ────────────────────────────────────────────────

  async drain(input: { migrateTo?: string }): Promise<void> {
    if (this.#state() !== "closed") {
      this.#row.set({ state: "draining", ...(input.migrateTo && { migrate_to: input.migrateTo }) });
      this.#sendAll({ type: "migrate", data: { ...(input.migrateTo && { stageArn: input.migrateTo }) } });
      this.#report(true);
    }
    await this.#forward((part) => part.drain(input));
  }

  async revive(): Promise<void> {
    if (this.#state() === "draining") {
      this.#row.set({ state: "ready", migrate_to: null });
      this.#report(true);
    }
    await this.#forward((part) => part.revive());
  }

  /** The stage is going away: viewers are told the broadcast ended (or to move), and every session ends. */
  async close(input: { ended: boolean; migrateTo?: string }): Promise<void> {
    this.#row.set({ state: "closed" });
    const message: ViewerServerMessage = input.ended
      ? { type: "ended" }
      : { type: "migrate", data: { ...(input.migrateTo && { stageArn: input.migrateTo }) } };
    for (const ws of this.ctx.getWebSockets()) {
      this.#send(ws, message);
      ws.close(1000, input.ended ? "broadcast ended" : "stage closed");
    }
    const rows = this.#sql.exec<{ participant_id: string }>("SELECT participant_id FROM viewers").toArray();
    for (const row of rows) this.#end(row.participant_id, input.ended ? "ended" : "stage_closed");
    this.#report(true);
    await this.#forward((part) => part.close(input));
  }

  /** The audience and live state, as the broadcast pushes them (to the head, which passes on what changed). */
  async setAudience(input: { total: number; live: boolean }): Promise<void> {
    if (this.#tell(input)) await this.#forward((part) => part.setAudience(input));
  }

  /** This shard's viewers told what changed; whether anything did. */
  #tell(input: { total: number; live: boolean }): boolean {
    const { live, audience } = this.#row.get();
    let changed = false;
    if (input.total !== audience) {
      this.#row.set({ audience: input.total });
      this.#sendAll({ type: "viewers", data: { count: input.total } });
      changed = true;
    }
    if ((live === 1) !== input.live) {
      this.#row.set({ live: input.live ? 1 : 0 });
      this.#sendAll({ type: "live", data: { live: input.live } });
      changed = true;
    }
    return changed;
  }

  // ── viewer sockets (Hibernation API) ─────────────────────────────────────

  override async fetch(request: Request): Promise<Response> {
    if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket")
      return new Response("expected a WebSocket", { status: 426 });
    const response = this.#sockets.accept(new URL(request.url).searchParams.get("participantId") ?? "");
    // Unproven sockets are closed by the sweep; make sure one comes.
    if (response.status === 101) this.#armAt(Date.now() + HELLO_TIMEOUT_MS);
    return response;
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    await this.#sockets.receive(ws, message);
  }

  override webSocketClose(ws: WebSocket, code: number): void {
    this.#sockets.closed(ws);
    completeClose(ws, code);
  }

  override webSocketError(ws: WebSocket): void {
    this.#sockets.closed(ws);
  }

  /** A proven socket: the viewer is connected (presence without heartbeats) and told where things stand. */
  #connected(ws: WebSocket, participantId: string): void {
    this.#sql.exec(
      "UPDATE viewers SET connected = 1, last_seen = ? WHERE participant_id = ?",
      Date.now(),
      participantId,
    );
    const { state, stage_arn, audience, live, migrate_to } = this.#row.get();
    this.#send(ws, {
      type: "welcome",
      data: {
        stageArn: stage_arn ?? "",
        viewers: audience ?? this.#count(),
        live: live === 1,
        state: state === "draining" ? "draining" : "ready",
      },
    });
    if (state === "draining")
      this.#send(ws, { type: "migrate", data: { ...(migrate_to && { stageArn: migrate_to }) } });
    this.#armSweep();
  }

  // ── sweep and reports ────────────────────────────────────────────────────

  override async alarm(): Promise<void> {
    // The alarm that woke us is spent.
    this.#alarmAt = null;
    const now = Date.now();
    const ttl = this.#cfg.presence.viewerTtlMs;
    this.#sockets.closeSilent(now);
    this.#grants.prune(now);
    // A proven socket is presence enough while it pings; an HTTP viewer must heartbeat.
    for (const ws of this.#sockets.proven()) {
      const pinged = this.ctx.getWebSocketAutoResponseTimestamp(ws)?.getTime() ?? 0;
      const { participantId } = ws.deserializeAttachment() as { participantId: string };
      if (pinged > 0)
        this.#sql.exec(
          "UPDATE viewers SET last_seen = MAX(last_seen, ?) WHERE participant_id = ?",
          pinged,
          participantId,
        );
    }
    const stale = this.#sql
      .exec<{ participant_id: string }>("SELECT participant_id FROM viewers WHERE last_seen < ?", now - ttl)
      .toArray();
    for (const row of stale) {
      for (const ws of this.ctx.getWebSockets(row.participant_id)) ws.close(CLOSE.TIMEOUT, "presence timed out");
      this.#end(row.participant_id, "timeout");
    }
    if (this.#row.get().dirty === 1) await this.#flush();
    this.#armSweep();
  }

  #end(participantId: string, reason: string): void {
    const row = this.#sql
      .exec<{ user_id: string; joined_at: number }>(
        "SELECT user_id, joined_at FROM viewers WHERE participant_id = ?",
        participantId,
      )
      .toArray()[0];
    if (!row) return;
    const before = this.#count();
    this.#sql.exec("DELETE FROM viewers WHERE participant_id = ?", participantId);
    this.#ended({ participantId, userId: row.user_id, joinedAt: row.joined_at, leftAt: Date.now(), reason });
    this.#changed(before, before - 1);
  }

  /** An ended session into the outbox the next report to the broadcast carries (the head's holds the others' too). */
  #ended(session: EndedSession): void {
    this.#sql.exec(
      "INSERT INTO ended (participant_id, user_id, joined_at, left_at, reason) VALUES (?, ?, ?, ?, ?)",
      session.participantId,
      session.userId,
      session.joinedAt,
      session.leftAt,
      session.reason,
    );
  }

  /**
   * A report goes at once when the stage crosses a threshold the broadcast scales on; otherwise at
   * most once a second. The head judges by the stage's count; another shard reports to the head
   * within a second whatever changed (forty shards each reporting each crossing at once would be the
   * many requests a second on the head that shards exist to avoid).
   */
  #changed(before: number, after: number): void {
    if (this.#row.get().idx !== 0) return this.#report(false);
    const { capacity, scaleUpAt } = this.#cfg.scaling;
    const others = this.#stageViewers(0);
    this.#report(reportIsUrgent(before + others, after + others, capacity, scaleUpAt));
  }

  #report(urgent: boolean): void {
    this.#row.set({ dirty: 1 });
    this.#armAt(reportAt(urgent, Date.now(), this.#row.get().reported_at ?? 0));
  }

  async #flush(): Promise<void> {
    const { broadcast_id: broadcastId, stage_arn: stageArn, reported_at, admitted, idx } = this.#row.get();
    if (!broadcastId || !stageArn) return;
    const ended = this.#sql
      .exec<{
        rowid: number;
        participant_id: string;
        user_id: string;
        joined_at: number;
        left_at: number;
        reason: string;
      }>("SELECT rowid, * FROM ended ORDER BY rowid LIMIT 500")
      .toArray();
    const now = Date.now();
    const since = reported_at ?? now;
    // Admissions per second since the last report: the broadcast provisions ahead of a crowd from it.
    const joinRate = admitted / Math.max(1, (now - since) / 1000);
    this.#row.set({ admitted: 0, dirty: 0, reported_at: now });
    const sessions: EndedSession[] = ended.map((e) => ({
      participantId: e.participant_id,
      userId: e.user_id,
      joinedAt: e.joined_at,
      leftAt: e.left_at,
      reason: e.reason,
    }));
    let reply: LoadReply;
    try {
      if (idx !== 0) {
        // Another shard of the stage: to its head, which reports the stage.
        reply = await this.env.STAGE_SHARD.getByName(shardName(stageArn, 0)).shardLoad({
          index: idx,
          viewers: this.#count(),
          joinRate,
          ended: sessions,
        });
      } else {
        // The stage's rate: the head's own and the others' that reported lately.
        const others = this.#sql
          .exec<{ rate: number }>(
            "SELECT COALESCE(SUM(join_rate), 0) AS rate FROM parts WHERE reported_at >= ?",
            now - RATE_FRESH_MS,
          )
          .one().rate;
        reply = await this.env.BROADCAST.getByName(broadcastId).reportLoad({
          stageArn,
          viewers: this.#stageViewers(),
          joinRate: joinRate + others,
          ended: sessions,
        });
      }
    } catch (error) {
      // Try again shortly; the sessions stay in the outbox until a report is taken.
      console.error(`load report for ${stageArn} failed: ${(error as Error).message}`);
      this.#report(false);
      return;
    }
    if (ended.length > 0) this.#sql.exec("DELETE FROM ended WHERE rowid <= ?", ended.at(-1)!.rowid);
    if (ended.length === 500) this.#report(false);
    // What the broadcast said: the head passes on a change to the others (a part's reply is the head's news).
    if (idx === 0) await this.setAudience({ total: reply.totalViewers, live: reply.live });
    else this.#tell({ total: reply.totalViewers, live: reply.live });
  }

  #armSweep(): void {
    if (this.#count() === 0 && this.#row.get().dirty !== 1) return;
    this.#armAt(Date.now() + this.#cfg.presence.viewerTtlMs / 2);
  }

  #armAt(at: number): void {
    // Alarms are one per object: keep whichever is due first. The time is known here, so the
    // join and heartbeat paths only write when the alarm actually moves earlier.
    if (this.#alarmAt !== null && this.#alarmAt <= at) return;
    this.#alarmAt = at;
    void this.ctx.storage.setAlarm(at);
  }

  #count(): number {
    return this.#sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM viewers").one().n;
  }

  #state(): ShardState {
    return this.#row.get().state;
  }

  #send(ws: WebSocket, message: ViewerServerMessage): void {
    this.#sockets.send(ws, message);
  }

  #sendAll(message: ViewerServerMessage): void {
    this.#sockets.sendAll(message);
  }
}
