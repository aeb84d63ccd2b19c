import { DurableObject } from "cloudflare:workers";
import { publicStats, type Stats } from "../../protocol/api.ts";
import { CLOSE, StatsClientMessage, type StatsServerMessage } from "../../protocol/messages.ts";
import type { Access } from "../broadcast/channels.ts";
import { RELAY_FIRST_REPORT_WITHIN_MS, RELAY_REPORT_MS, STATS_PUSH_MS } from "../broadcast/timing.ts";
import { loadConfig, type Config } from "../config.ts";
import { boundedMessage, completeClose, sendJson, type MessageWindow } from "../sockets.ts";
import { migrate } from "../storage/migrations.ts";

/**
 * A share of one broadcast's stats sockets (`GET /ws`, docs/design.md, "Stats relays"). A
 * seed-style viewer page subscribes to the stats; fifty thousand of them on the Broadcast object
 * would be more sockets than one object hibernates with, and every update a fifty-thousand-message
 * fan-out from the object that must also create stages. So the Worker spreads them over relays
 * (`<broadcastId>/<n>`, n from a hash of the connection over the number of relays the routing
 * table names), each holding at most `STATS_SOCKETS_PER_RELAY`; the Broadcast object pushes one
 * update per relay, and each relay sends it on to its subscribers, at most
 * `STATS_MESSAGES_PER_SECOND` messages a second (with more subscribers, updates are further apart).
 *
 * A relay is created by its first socket and tells the broadcast its count (at once for the first
 * and the last socket, otherwise at most once a second); with its last socket gone it forgets
 * everything and the runtime evicts it: no relay outlives its sockets.
 *
 * The rules of every socket are the Broadcast object's (channels.ts): bounded messages, a bounded
 * message rate, the public stats unless a ticket (redeemed at the broadcast) makes it the operator's.
 */

type Attachment = MessageWindow & { access: Access; subscribed: boolean };

const MIGRATIONS = [
  `CREATE TABLE relay (id INTEGER PRIMARY KEY CHECK (id = 1), broadcast_id TEXT NOT NULL, idx INTEGER NOT NULL);`,
];

export class StatsRelay extends DurableObject<Env> {
  readonly #sql: SqlStorage;
  #config: Config | undefined;
  /** The latest stats the broadcast pushed (or this relay asked for). */
  #latest: Stats | undefined;
  #asking: Promise<Stats> | undefined;
  /** Pacing of the fan-out: when the last one went, and the timer for a pending one. */
  #sentAt = 0;
  #pending: ReturnType<typeof setTimeout> | undefined;
  /** Updates pushed to it since it started (tests). */
  #pushes = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#sql = ctx.storage.sql;
    migrate(this.#sql, MIGRATIONS);
  }

  get #cfg(): Config {
    this.#config ??= loadConfig(this.env);
    return this.#config;
  }

  #self(): { broadcastId: string; index: number } | undefined {
    const row = this.#sql.exec<{ broadcast_id: string; idx: number }>("SELECT * FROM relay").toArray()[0];
    return row && { broadcastId: row.broadcast_id, index: row.idx };
  }

  // ── sockets ──────────────────────────────────────────────────────────────

  /** A stats socket the Worker let through: `x-fanout-access` says what the upgrade proved, `x-fanout-relay` whose relay this is. */
  override async fetch(request: Request): Promise<Response> {
    if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket")
      return new Response("expected a WebSocket", { status: 426 });
    const [broadcastId, index] = (request.headers.get("x-fanout-relay") ?? "").split("/");
    if (!broadcastId || !index) return new Response("no relay named", { status: 400 });
    if (this.ctx.getWebSockets().length >= this.#cfg.limits.statsSocketsPerRelay)
      return new Response("this relay is full", { status: 503 });
    // Again after an idle relay forgot everything (deleteAll takes the schema too).
    migrate(this.#sql, MIGRATIONS);
    this.#sql.exec(
      "INSERT INTO relay (id, broadcast_id, idx) VALUES (1, ?, ?) ON CONFLICT (id) DO NOTHING",
      broadcastId,
      Number(index),
    );
    const given = request.headers.get("x-fanout-access");
    const access: Access = given === "admin" || given === "viewer" ? given : "none";
    const { 0: client, 1: server } = new WebSocketPair();
    this.ctx.acceptWebSocket(server);
    server.serializeAttachment({
      access,
      subscribed: false,
      windowStart: Date.now(),
      messages: 0,
    } satisfies Attachment);
    this.#changed(false, this.ctx.getWebSockets().length === 1);
    return new Response(null, { status: 101, webSocket: client });
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    // The Broadcast object's rules (sockets.ts): bounded size and rate, JSON.
    const received = boundedMessage(ws, message, (text) => this.#error(ws, text));
    if (!received) return;
    const { data } = received;
    const counted = attachment(ws);
    const parsed = StatsClientMessage.safeParse(data);
    if (!parsed.success) return this.#error(ws, 'Send {"action":"subscribe","channel":"stats"}.');
    let access = counted.access;
    if (parsed.data.ticket !== undefined) {
      const self = this.#self();
      const redeemed = self && (await this.env.BROADCAST.getByName(self.broadcastId).redeemTicket(parsed.data.ticket));
      if (!redeemed) return ws.close(CLOSE.UNAUTHORIZED, "ticket unknown, expired or already used");
      access = "admin";
    }
    if (access === "none") return ws.close(CLOSE.UNAUTHORIZED, "this deployment needs a key or a ticket");
    const subscribed = parsed.data.action === "subscribe";
    ws.serializeAttachment({ ...attachment(ws), access, subscribed } satisfies Attachment);
    this.#send(ws, { type: subscribed ? "subscribed" : "unsubscribed", channel: "stats" });
    if (!subscribed) return;
    const stats = await this.#current();
    this.#send(ws, { type: "stats_update", data: access === "admin" ? stats : publicStats(stats) });
  }

  override webSocketClose(ws: WebSocket, code: number): void {
    completeClose(ws, code);
    this.#closed(ws);
  }

  override webSocketError(ws: WebSocket): void {
    this.#closed(ws);
  }

  #closed(ws: WebSocket): void {
    const left = this.ctx.getWebSockets().filter((s) => s !== ws).length;
    this.#changed(left === 0);
  }

  // ── pushed by the broadcast ──────────────────────────────────────────────

  /**
   * The broadcast's latest stats: sent on to every subscriber, no more often than the message
   * budget allows (with N subscribers, every N / STATS_MESSAGES_PER_SECOND seconds at the
   * fastest); an update arriving sooner waits, and only the latest is sent.
   */
  push(stats: Stats): void {
    this.#pushes++;
    this.#latest = stats;
    if (this.#pending) return;
    const subscribers = this.ctx.getWebSockets().length;
    const interval = Math.max(STATS_PUSH_MS, (1000 * subscribers) / this.#cfg.limits.statsMessagesPerSecond);
    const wait = this.#sentAt + interval - Date.now();
    if (wait <= 0) return this.#fanOut();
    this.#pending = setTimeout(() => {
      this.#pending = undefined;
      this.#fanOut();
    }, wait);
  }

  /** How many sockets this relay holds, and the updates pushed to it since it started. */
  load(): { sockets: number; pushes: number } {
    return { sockets: this.ctx.getWebSockets().length, pushes: this.#pushes };
  }

  #fanOut(): void {
    if (!this.#latest) return;
    this.#sentAt = Date.now();
    const stats = this.#latest;
    let open: ReturnType<typeof publicStats> | undefined;
    for (const ws of this.ctx.getWebSockets()) {
      const { subscribed, access } = attachment(ws);
      if (!subscribed) continue;
      const data = access === "admin" ? stats : (open ??= publicStats(stats));
      this.#send(ws, { type: "stats_update", data });
    }
  }

  /** The stats for a new subscriber: the last pushed, or asked of the broadcast once (one ask however many subscribe meanwhile). */
  async #current(): Promise<Stats> {
    if (this.#latest) return this.#latest;
    const self = this.#self();
    if (!self) throw new Error("relay has no broadcast");
    this.#asking ??= this.env.BROADCAST.getByName(self.broadcastId)
      .stats()
      .finally(() => (this.#asking = undefined));
    const stats = await this.#asking;
    this.#latest ??= stats;
    return this.#latest;
  }

  // ── the count, told to the broadcast ─────────────────────────────────────

  #changed(urgent: boolean, first = false): void {
    const wait = first ? Math.random() * RELAY_FIRST_REPORT_WITHIN_MS : RELAY_REPORT_MS;
    const at = urgent ? Date.now() : Date.now() + wait;
    this.ctx.waitUntil(
      (async () => {
        // Never later than it is set already: a steady stream of sockets must not keep postponing the report.
        const set = await this.ctx.storage.getAlarm();
        if (set === null || set > at) await this.ctx.storage.setAlarm(at);
      })(),
    );
  }

  override async alarm(): Promise<void> {
    const self = this.#self();
    if (!self) return;
    const sockets = this.ctx.getWebSockets().length;
    await this.env.BROADCAST.getByName(self.broadcastId).relayLoad({ index: self.index, sockets });
    // Idle: nothing of it is kept, and nothing pushes to it any more.
    if (sockets === 0 && this.ctx.getWebSockets().length === 0) await this.ctx.storage.deleteAll();
  }

  #send(ws: WebSocket, message: StatsServerMessage): void {
    sendJson(ws, message);
  }

  #error(ws: WebSocket, message: string): void {
    this.#send(ws, { type: "error", data: { message } });
  }
}

const attachment = (ws: WebSocket) => ws.deserializeAttachment() as Attachment;
