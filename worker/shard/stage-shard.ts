import { DurableObject } from "cloudflare:workers";
import { VIEWER_PING, VIEWER_PONG, type ViewerServerMessage } from "../../protocol/messages.ts";
import { loadConfig, type Config } from "../config.ts";
import type { EndedSession, LoadReply } from "../broadcast/contract.ts";
import { completeClose, sendJson } from "../sockets.ts";
import { migrate } from "../storage/migrations.ts";
import { StateRow } from "../storage/state-row.ts";
import { MIGRATIONS, type ShardRow, type ShardState } from "./schema.ts";

/**
 * The viewers of one stage (docs/design.md, "Presence"): admission against capacity, viewer
 * sessions, HTTP heartbeats, viewer WebSockets (Hibernation API: presence
 * with no periodic requests), the sweep of silent viewers, and load reports
 * to the broadcast, coalesced to at most one a second (at once when the stage
 * crosses a threshold). One object per stage, addressed by the stage ARN, so
 * no object sees every join or every heartbeat of a broadcast.
 */

export type Admission =
  | { admitted: true; viewers: number; capacity: number }
  | { admitted: false; reason: "full" | "draining" | "closed" | "unknown"; viewers: number };

export interface ViewerSession {
  participantId: string;
  userId: string;
  joinedAt: string;
  lastSeen: string;
  connected: boolean;
}

export interface HeartbeatReply {
  found: boolean;
  viewers: number;
  state: ShardState;
  /** Set while the stage drains: where the viewer should go. */
  migrateTo?: string;
}

const REPORT_INTERVAL_MS = 1000;

export class StageShard extends DurableObject<Env> {
  readonly #sql: SqlStorage;
  readonly #row: StateRow<ShardRow>;
  #config: Config | undefined;
  /** When the alarm is due, as set in storage (null: none). Read once at start, then kept here. */
  #alarmAt: number | null = null;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#sql = ctx.storage.sql;
    migrate(this.#sql, MIGRATIONS);
    this.#row = new StateRow<ShardRow>(this.#sql, "shard");
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

  init(input: { broadcastId: string; stageArn: string; live: boolean }): void {
    this.#row.set({ broadcast_id: input.broadcastId, stage_arn: input.stageArn, live: input.live ? 1 : 0 });
  }

  // ── the join path ────────────────────────────────────────────────────────

  admit(input: { participantId: string; userId: string }): Admission {
    const state = this.#state();
    const viewers = this.#count();
    if (!this.#row.get().stage_arn) return { admitted: false, reason: "unknown", viewers };
    if (state !== "ready") return { admitted: false, reason: state, viewers };
    const capacity = this.#cfg.scaling.capacity;
    if (viewers >= capacity) return { admitted: false, reason: "full", viewers };
    const now = Date.now();
    this.#sql.exec(
      `INSERT INTO viewers (participant_id, user_id, joined_at, last_seen) VALUES (?, ?, ?, ?)
       ON CONFLICT (participant_id) DO UPDATE SET last_seen = excluded.last_seen`,
      input.participantId,
      input.userId,
      now,
      now,
    );
    this.#row.set({ admitted: this.#row.get().admitted + 1 });
    this.#changed(viewers, viewers + 1);
    return { admitted: true, viewers: viewers + 1, capacity };
  }

  // ── presence over HTTP (clients without the viewer socket) ────────────────

  heartbeat(input: { userId: string; participantId?: string }): HeartbeatReply {
    const now = Date.now();
    const cursor = input.participantId
      ? this.#sql.exec(
          "UPDATE viewers SET last_seen = ? WHERE participant_id = ? AND user_id = ?",
          now,
          input.participantId,
          input.userId,
        )
      : this.#sql.exec("UPDATE viewers SET last_seen = ? WHERE user_id = ?", now, input.userId);
    this.#armSweep();
    const { state, migrate_to } = this.#row.get();
    return {
      found: cursor.rowsWritten > 0,
      viewers: this.#count(),
      state,
      ...(state === "draining" && migrate_to && { migrateTo: migrate_to }),
    };
  }

  leave(input: { userId: string; participantId?: string }): { removed: number } {
    const rows = this.#sql
      .exec<{ participant_id: string }>(
        input.participantId
          ? "SELECT participant_id FROM viewers WHERE user_id = ? AND participant_id = ?"
          : "SELECT participant_id FROM viewers WHERE user_id = ?",
        ...(input.participantId ? [input.userId, input.participantId] : [input.userId]),
      )
      .toArray();
    for (const row of rows) this.#end(row.participant_id, "left");
    return { removed: rows.length };
  }

  /**
   * A token renewal: only a viewer this shard already holds (same participant
   * and user) may have its participant id signed again; anyone else would be
   * taking over another viewer's seat.
   */
  renew(input: { userId: string; participantId: string }): Admission {
    const known = this.#sql
      .exec("SELECT 1 FROM viewers WHERE participant_id = ? AND user_id = ?", input.participantId, input.userId)
      .toArray();
    if (known.length === 0) return { admitted: false, reason: "unknown", viewers: this.#count() };
    this.#sql.exec("UPDATE viewers SET last_seen = ? WHERE participant_id = ?", Date.now(), input.participantId);
    return { admitted: true, viewers: this.#count(), capacity: this.#cfg.scaling.capacity };
  }

  /** A viewer back after a blip, with the participant id it had: admitted again if it was swept meanwhile. */
  rejoin(input: { userId: string; participantId: string }): Admission {
    const existing = this.#sql.exec("SELECT 1 FROM viewers WHERE participant_id = ?", input.participantId).toArray();
    if (existing.length > 0) {
      this.#sql.exec("UPDATE viewers SET last_seen = ? WHERE participant_id = ?", Date.now(), input.participantId);
      return { admitted: true, viewers: this.#count(), capacity: this.#cfg.scaling.capacity };
    }
    return this.admit(input);
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

  drain(input: { migrateTo?: string }): void {
    if (this.#state() === "closed") return;
    this.#row.set({ state: "draining", ...(input.migrateTo && { migrate_to: input.migrateTo }) });
    this.#sendAll({ type: "migrate", data: { ...(input.migrateTo && { stageArn: input.migrateTo }) } });
    this.#report(true);
  }

  revive(): void {
    if (this.#state() !== "draining") return;
    this.#row.set({ state: "ready", migrate_to: null });
    this.#report(true);
  }

  /** The stage is going away: viewers are told the broadcast ended (or to move), and every session ends. */
  close(input: { ended: boolean; migrateTo?: string }): void {
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
  }

  setAudience(input: { total: number; live: boolean }): void {
    const { live, audience } = this.#row.get();
    if (input.total !== audience) {
      this.#row.set({ audience: input.total });
      this.#sendAll({ type: "viewers", data: { count: input.total } });
    }
    if ((live === 1) !== input.live) {
      this.#row.set({ live: input.live ? 1 : 0 });
      this.#sendAll({ type: "live", data: { live: input.live } });
    }
  }

  // ── viewer sockets (Hibernation API) ─────────────────────────────────────

  override async fetch(request: Request): Promise<Response> {
    if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket")
      return new Response("expected a WebSocket", { status: 426 });
    const url = new URL(request.url);
    const participantId = url.searchParams.get("participantId") ?? "";
    const row = this.#sql
      .exec<{ user_id: string }>("SELECT user_id FROM viewers WHERE participant_id = ?", participantId)
      .toArray()[0];
    if (!row) return new Response("not admitted to this stage", { status: 404 });
    const { 0: client, 1: server } = new WebSocketPair();
    this.ctx.acceptWebSocket(server, [participantId]);
    server.serializeAttachment({ participantId });
    this.#sql.exec(
      "UPDATE viewers SET connected = 1, last_seen = ? WHERE participant_id = ?",
      Date.now(),
      participantId,
    );
    const { state, stage_arn, audience, live, migrate_to } = this.#row.get();
    this.#send(server, {
      type: "welcome",
      data: {
        stageArn: stage_arn ?? "",
        viewers: audience ?? this.#count(),
        live: live === 1,
        state: state === "draining" ? "draining" : "ready",
      },
    });
    if (state === "draining")
      this.#send(server, { type: "migrate", data: { ...(migrate_to && { stageArn: migrate_to }) } });
    this.#armSweep();
    return new Response(null, { status: 101, webSocket: client });
  }

  override webSocketMessage(): void {
    // Viewers only ping (answered by the auto-response); anything else is ignored, never fatal.
  }

  override webSocketClose(ws: WebSocket, code: number): void {
    const { participantId } = ws.deserializeAttachment() as { participantId: string };
    this.#end(participantId, "left");
    completeClose(ws, code);
  }

  override webSocketError(ws: WebSocket): void {
    const { participantId } = ws.deserializeAttachment() as { participantId: string };
    this.#end(participantId, "left");
  }

  // ── sweep and reports ────────────────────────────────────────────────────

  override async alarm(): Promise<void> {
    // The alarm that woke us is spent.
    this.#alarmAt = null;
    const now = Date.now();
    const ttl = this.#cfg.presence.viewerTtlMs;
    // A socket is presence enough while it pings; an HTTP viewer must heartbeat.
    for (const ws of this.ctx.getWebSockets()) {
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
      for (const ws of this.ctx.getWebSockets(row.participant_id)) ws.close(4408, "presence timed out");
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
    this.#sql.exec(
      "INSERT INTO ended (participant_id, user_id, joined_at, left_at, reason) VALUES (?, ?, ?, ?, ?)",
      participantId,
      row.user_id,
      row.joined_at,
      Date.now(),
      reason,
    );
    this.#changed(before, before - 1);
  }

  /** A report goes at once when the stage crosses a threshold the broadcast scales on; otherwise at most once a second. */
  #changed(before: number, after: number): void {
    const { capacity, scaleUpAt } = this.#cfg.scaling;
    const mark = capacity * scaleUpAt;
    const crossed = before < mark !== after < mark || after >= capacity || before >= capacity || after === 0;
    this.#report(crossed);
  }

  #report(urgent: boolean): void {
    this.#row.set({ dirty: 1 });
    const last = this.#row.get().reported_at ?? 0;
    const at = urgent ? Date.now() : Math.max(Date.now(), last + REPORT_INTERVAL_MS);
    this.#armAt(at);
  }

  async #flush(): Promise<void> {
    const { broadcast_id: broadcastId, stage_arn: stageArn, reported_at, admitted } = this.#row.get();
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
      reply = await this.env.BROADCAST.getByName(broadcastId).reportLoad({
        stageArn,
        viewers: this.#count(),
        joinRate,
        ended: sessions,
      });
    } catch (error) {
      // Try again shortly; the sessions stay in the outbox until a report is taken.
      console.error(`load report for ${stageArn} failed: ${(error as Error).message}`);
      this.#report(false);
      return;
    }
    if (ended.length > 0) this.#sql.exec("DELETE FROM ended WHERE rowid <= ?", ended.at(-1)!.rowid);
    if (ended.length === 500) this.#report(false);
    this.setAudience({ total: reply.totalViewers, live: reply.live });
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
    sendJson(ws, message);
  }

  #sendAll(message: ViewerServerMessage): void {
    for (const ws of this.ctx.getWebSockets()) this.#send(ws, message);
  }
}
