import { isServing, publicStats, type Stats } from "../../protocol/api.ts";
import {
  BroadcasterClientMessage,
  CLOSE,
  StatsClientMessage,
  type BroadcasterServerMessage,
  type StatsServerMessage,
} from "../../protocol/messages.ts";
import { completeClose, sendJson } from "../sockets.ts";
import type { Result } from "./contract.ts";

/**
 * The Broadcast object's sockets (Hibernation API): the stats channel
 * (`GET /ws`) and the broadcaster channel (`GET /ws?type=broadcaster`).
 * Pushes are coalesced: at most one stats update every STATS_PUSH_MS, to the
 * stats sockets and, when the audience or the live state changed, to every
 * serving stage's shard (its viewers see the count and live state on their
 * own socket).
 *
 * Who may do what (docs/design.md, "Trust"): the Worker says what the upgrade
 * proved (`x-fanout-access`: the admin key, the viewer key or an open
 * deployment, or nothing). A socket without the admin key becomes the
 * operator's by redeeming a ticket in its first message, never in its URL.
 * The public sees only what a viewer page shows (PublicStats). Every socket
 * is bounded: sockets per object, message size and rate; one that floods is
 * closed with a close code that says so (CLOSE in protocol/messages.ts).
 */

type Role = "stats" | "broadcaster";
/** `admin`: the operator's view; `viewer`: the public's; `none`: nothing until a ticket is redeemed. */
export type Access = "admin" | "viewer" | "none";
type Attachment = { role: Role; access: Access; subscribed: boolean; windowStart: number; messages: number };

/** What the channels ask of the broadcast. */
export interface BroadcasterActions {
  publishState(data: Extract<BroadcasterClientMessage, { type: "publish_state" }>["data"]): Promise<Result<void>>;
  end(): Promise<unknown>;
  redeemTicket(ticket: string): Promise<boolean>;
}

const STATS_PUSH_MS = 250;
export const MAX_MESSAGE_BYTES = 4096;
/** Messages a socket may send per window; a studio sends a handful a minute. */
export const MAX_MESSAGES = 30;
const MESSAGE_WINDOW_MS = 10_000;
/** A broadcaster socket opened without the admin key has this long to redeem its ticket. */
const AUTH_TIMEOUT_MS = 10_000;

export class Channels {
  readonly #ctx: DurableObjectState;
  readonly #env: Env;
  readonly #stats: () => Stats;
  readonly #maxSockets: () => number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #lastAudience = "";
  #latest: { at: number; stats: Stats } | undefined;

  constructor(ctx: DurableObjectState, env: Env, stats: () => Stats, maxSockets: () => number) {
    this.#ctx = ctx;
    this.#env = env;
    this.#stats = stats;
    this.#maxSockets = maxSockets;
  }

  /** Accepts a socket the Worker let through; its `x-fanout-channel` and `x-fanout-access` headers say which and with what rights. */
  accept(request: Request): Response {
    if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket")
      return new Response("expected a WebSocket", { status: 426 });
    if (this.#ctx.getWebSockets().length >= this.#maxSockets())
      return new Response("too many connections to this broadcast", { status: 503 });
    const role: Role = request.headers.get("x-fanout-channel") === "broadcaster" ? "broadcaster" : "stats";
    const given = request.headers.get("x-fanout-access");
    const access: Access = given === "admin" || given === "viewer" ? given : "none";
    const { 0: client, 1: server } = new WebSocketPair();
    this.#ctx.acceptWebSocket(server, [role]);
    server.serializeAttachment({
      role,
      access,
      subscribed: false,
      windowStart: Date.now(),
      messages: 0,
    } satisfies Attachment);
    if (role === "broadcaster" && access !== "admin")
      setTimeout(() => {
        if (attachment(server).access !== "admin") server.close(CLOSE.TIMEOUT, "no ticket");
      }, AUTH_TIMEOUT_MS);
    return new Response(null, { status: 101, webSocket: client });
  }

  async receive(ws: WebSocket, message: string | ArrayBuffer, actions: BroadcasterActions): Promise<void> {
    const state = attachment(ws);
    const size = typeof message === "string" ? message.length : message.byteLength;
    if (size > MAX_MESSAGE_BYTES) return ws.close(CLOSE.TOO_BIG, `messages are at most ${MAX_MESSAGE_BYTES} bytes`);
    const now = Date.now();
    const fresh = now - state.windowStart >= MESSAGE_WINDOW_MS;
    const counted = {
      ...state,
      windowStart: fresh ? now : state.windowStart,
      messages: fresh ? 1 : state.messages + 1,
    };
    if (counted.messages > MAX_MESSAGES) return ws.close(CLOSE.TOO_MANY_MESSAGES, "too many messages");
    ws.serializeAttachment(counted);
    let data: unknown;
    try {
      data = JSON.parse(typeof message === "string" ? message : new TextDecoder().decode(message));
    } catch (error) {
      if (!(error instanceof SyntaxError)) throw error;
      return this.#error(ws, "Messages must be JSON.");
    }
    if (counted.role === "stats") return this.#onStats(ws, counted, data, actions);
    const parsed = BroadcasterClientMessage.safeParse(data);
    if (counted.access !== "admin") {
      if (!parsed.success || parsed.data.type !== "auth")
        return ws.close(CLOSE.UNAUTHORIZED, 'send {"type":"auth","ticket":"..."} first');
      if (!(await actions.redeemTicket(parsed.data.ticket)))
        return ws.close(CLOSE.UNAUTHORIZED, "ticket unknown, expired or already used");
      ws.serializeAttachment({ ...attachment(ws), access: "admin" } satisfies Attachment);
      return sendJson(ws, { type: "ready" } satisfies BroadcasterServerMessage);
    }
    if (!parsed.success) return this.#error(ws, "Unknown message.");
    const msg = parsed.data;
    switch (msg.type) {
      case "publish_state": {
        const result = await actions.publishState(msg.data);
        if (!result.ok) this.#error(ws, result.failure.message);
        return;
      }
      case "end":
        await actions.end();
        return;
      case "auth":
        // Already the operator's socket: nothing to redeem.
        return sendJson(ws, { type: "ready" } satisfies BroadcasterServerMessage);
      default:
        msg satisfies never;
    }
  }

  close(ws: WebSocket, code: number): void {
    completeClose(ws, code);
  }

  toBroadcasters(message: BroadcasterServerMessage): void {
    for (const ws of this.#ctx.getWebSockets("broadcaster"))
      if (attachment(ws).access === "admin") sendJson(ws, message);
  }

  /** Something the stats show changed: push, coalesced. */
  statsChanged(): void {
    if (this.#timer) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#push();
    }, STATS_PUSH_MS);
  }

  /** The stats, computed at most once per push interval however many sockets subscribe. */
  #current(now = Date.now()): Stats {
    if (!this.#latest || now - this.#latest.at >= STATS_PUSH_MS) this.#latest = { at: now, stats: this.#stats() };
    return this.#latest.stats;
  }

  #push(): void {
    const stats = (this.#latest = { at: Date.now(), stats: this.#stats() }).stats;
    const open = publicStats(stats);
    for (const ws of this.#ctx.getWebSockets("stats")) {
      const { subscribed, access } = attachment(ws);
      if (subscribed)
        sendJson(ws, { type: "stats_update", data: access === "admin" ? stats : open } satisfies StatsServerMessage);
    }
    const audience = JSON.stringify([stats.totalViewers, stats.isPublisherLive]);
    if (audience === this.#lastAudience) return;
    this.#lastAudience = audience;
    for (const stage of stats.stages.filter(isServing)) {
      this.#ctx.waitUntil(
        this.#env.STAGE_SHARD.getByName(stage.stageArn).setAudience({
          total: stats.totalViewers,
          live: stats.isPublisherLive,
        }),
      );
    }
  }

  async #onStats(ws: WebSocket, state: Attachment, data: unknown, actions: BroadcasterActions): Promise<void> {
    const parsed = StatsClientMessage.safeParse(data);
    if (!parsed.success) return this.#error(ws, 'Send {"action":"subscribe","channel":"stats"}.');
    let access = state.access;
    if (parsed.data.ticket !== undefined) {
      if (!(await actions.redeemTicket(parsed.data.ticket)))
        return ws.close(CLOSE.UNAUTHORIZED, "ticket unknown, expired or already used");
      access = "admin";
    }
    if (access === "none") return ws.close(CLOSE.UNAUTHORIZED, "this deployment needs a key or a ticket");
    const subscribed = parsed.data.action === "subscribe";
    ws.serializeAttachment({ ...attachment(ws), access, subscribed } satisfies Attachment);
    sendJson(ws, { type: subscribed ? "subscribed" : "unsubscribed", channel: "stats" } satisfies StatsServerMessage);
    if (!subscribed) return;
    const stats = this.#current();
    sendJson(ws, {
      type: "stats_update",
      data: access === "admin" ? stats : publicStats(stats),
    } satisfies StatsServerMessage);
  }

  #error(ws: WebSocket, message: string): void {
    sendJson(ws, { type: "error", data: { message } } satisfies StatsServerMessage | BroadcasterServerMessage);
  }
}

const attachment = (ws: WebSocket) => ws.deserializeAttachment() as Attachment;
