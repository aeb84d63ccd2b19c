import { isServing, type Stats } from "../../protocol/api.ts";
import { BroadcasterClientMessage, CLOSE, type BroadcasterServerMessage } from "../../protocol/messages.ts";
import { boundedMessage, completeClose, sendJson, type MessageWindow } from "../sockets.ts";
import { MAX_PUSHES_PER_SECOND, STATS_PUSH_MS } from "./timing.ts";
import type { Result } from "./contract.ts";

/**
 * The Broadcast object's sockets (Hibernation API): the broadcaster channel
 * (`GET /ws?type=broadcaster`), and the pushes that keep everyone else's view
 * current. The stats sockets (`GET /ws`) are on relays (relay/stats-relay.ts):
 * the object pushes one update per relay, not one per subscriber.
 *
 * Pushes are coalesced: at most one stats update every STATS_PUSH_MS, to every
 * relay and, when the audience or the live state changed, to every serving
 * stage's shard (its viewers see the count and live state on their own socket).
 * With many relays and stages the updates are spaced further, so that the
 * object sends at most MAX_PUSHES_PER_SECOND whatever their number (a million
 * viewers are a hundred stages and a few hundred relays: at four updates a
 * second that would be more than the object should send).
 *
 * Who may do what (docs/design.md, "Trust"): the Worker says what the upgrade
 * proved (`x-fanout-access`: the admin key, or nothing). A socket without the
 * admin key becomes the operator's by redeeming a ticket in its first message,
 * never in its URL. Every socket is bounded: sockets per object, message size
 * and rate; one that floods is closed with a close code that says so (CLOSE in
 * protocol/messages.ts).
 */

/** `admin`: the operator's view; `viewer`: the public's; `none`: nothing until a ticket is redeemed. */
export type Access = "admin" | "viewer" | "none";
type Attachment = MessageWindow & { access: Access };

/** What the channels ask of the broadcast. */
export interface BroadcasterActions {
  publishState(data: Extract<BroadcasterClientMessage, { type: "publish_state" }>["data"]): Promise<Result<void>>;
  end(): Promise<unknown>;
  redeemTicket(ticket: string): Promise<boolean>;
}

/** A broadcaster socket opened without the admin key has this long to redeem its ticket. */
const AUTH_TIMEOUT_MS = 10_000;

export class Channels {
  readonly #ctx: DurableObjectState;
  readonly #env: Env;
  readonly #stats: () => Stats;
  readonly #maxSockets: () => number;
  readonly #relays: () => number[];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #lastAudience = "";
  #pushedAt = 0;
  /** Serving stages at the last push: their shards are pushed to when the audience changes. */
  #shards = 0;
  /** Updates computed, and pushes sent in the current second: what the tests check the bounds on. */
  #updates = 0;
  #sent = { second: 0, pushes: 0 };
  /** Pushes waiting for room in the budget, by target: the latest for each. */
  readonly #queue = new Map<string, () => Promise<unknown>>();
  #dispatching: ReturnType<typeof setTimeout> | undefined;

  constructor(ctx: DurableObjectState, env: Env, stats: () => Stats, maxSockets: () => number, relays: () => number[]) {
    this.#ctx = ctx;
    this.#env = env;
    this.#stats = stats;
    this.#maxSockets = maxSockets;
    this.#relays = relays;
  }

  /** Accepts a broadcaster socket the Worker let through; its `x-fanout-access` header says with what rights. */
  accept(request: Request): Response {
    if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket")
      return new Response("expected a WebSocket", { status: 426 });
    if (request.headers.get("x-fanout-channel") !== "broadcaster")
      return new Response("stats sockets are served by the relays", { status: 404 });
    if (this.#ctx.getWebSockets().length >= this.#maxSockets())
      return new Response("too many connections to this broadcast", { status: 503 });
    const access: Access = request.headers.get("x-fanout-access") === "admin" ? "admin" : "none";
    const { 0: client, 1: server } = new WebSocketPair();
    this.#ctx.acceptWebSocket(server, ["broadcaster"]);
    server.serializeAttachment({ access, windowStart: Date.now(), messages: 0 } satisfies Attachment);
    if (access !== "admin")
      setTimeout(() => {
        if (attachment(server).access !== "admin") server.close(CLOSE.TIMEOUT, "no ticket");
      }, AUTH_TIMEOUT_MS);
    return new Response(null, { status: 101, webSocket: client });
  }

  async receive(ws: WebSocket, message: string | ArrayBuffer, actions: BroadcasterActions): Promise<void> {
    const received = boundedMessage(ws, message, (text) => this.#error(ws, text));
    if (!received) return;
    const { data } = received;
    const counted = attachment(ws);
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

  /** Something the stats show changed: push, coalesced, within the push budget. */
  statsChanged(): void {
    if (this.#timer) return;
    const targets = this.#relays().length + this.#shards;
    // Beyond the budget an update goes out over several seconds (#dispatch); the next is spaced as far.
    const interval = Math.max(STATS_PUSH_MS, 1000 * Math.ceil(targets / MAX_PUSHES_PER_SECOND));
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        this.#push();
      },
      Math.max(STATS_PUSH_MS, this.#pushedAt + interval - Date.now()),
    );
  }

  /** Updates computed since the object started, and pushes (RPCs to relays and shards) sent this second. */
  pushes(): { updates: number; thisSecond: number } {
    const thisSecond = Math.floor(Date.now() / 1000) === this.#sent.second ? this.#sent.pushes : 0;
    return { updates: this.#updates, thisSecond };
  }

  #push(): void {
    this.#updates++;
    this.#pushedAt = Date.now();
    const stats = this.#stats();
    const serving = stats.stages.filter(isServing);
    this.#shards = serving.length;
    for (const index of this.#relays()) {
      const name = relayName(stats.broadcastId, index);
      this.#queue.set(`relay:${name}`, () => this.#env.STATS_RELAY.getByName(name).push(stats));
    }
    const audience = JSON.stringify([stats.totalViewers, stats.isPublisherLive]);
    if (audience !== this.#lastAudience) {
      this.#lastAudience = audience;
      const update = { total: stats.totalViewers, live: stats.isPublisherLive };
      for (const stage of serving)
        this.#queue.set(`shard:${stage.stageArn}`, () =>
          this.#env.STAGE_SHARD.getByName(stage.stageArn).setAudience(update),
        );
    }
    this.#dispatch();
  }

  /**
   * Sends what is queued, at most MAX_PUSHES_PER_SECOND in any second; the rest at the next
   * second. A target still queued when a newer update comes gets only the newer one.
   */
  #dispatch(): void {
    const now = Date.now();
    const second = Math.floor(now / 1000);
    if (second !== this.#sent.second) this.#sent = { second, pushes: 0 };
    for (const [target, push] of this.#queue) {
      if (this.#sent.pushes >= MAX_PUSHES_PER_SECOND) break;
      this.#queue.delete(target);
      this.#sent.pushes++;
      this.#ctx.waitUntil(push().catch((error: unknown) => console.error(`push failed: ${(error as Error).message}`)));
    }
    if (this.#queue.size > 0 && !this.#dispatching)
      this.#dispatching = setTimeout(
        () => {
          this.#dispatching = undefined;
          this.#dispatch();
        },
        1000 - (now % 1000) + 1,
      );
  }

  #error(ws: WebSocket, message: string): void {
    sendJson(ws, { type: "error", data: { message } } satisfies BroadcasterServerMessage);
  }
}

const attachment = (ws: WebSocket) => ws.deserializeAttachment() as Attachment;

/** A relay's object name: the broadcast's id and the relay's number. */
export const relayName = (broadcastId: string, index: number) => `${broadcastId}/${index}`;
