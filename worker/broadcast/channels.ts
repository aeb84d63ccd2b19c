import { isServing, type Stats } from "../../protocol/api.ts";
import {
  BroadcasterClientMessage,
  StatsClientMessage,
  type BroadcasterServerMessage,
  type StatsServerMessage,
} from "../../protocol/messages.ts";
import { completeClose, sendJson } from "../sockets.ts";
import type { Result } from "./contract.ts";

/**
 * The Broadcast object's sockets (Hibernation API): the stats channel
 * (`GET /ws`, open) and the broadcaster channel (`GET /ws?type=broadcaster`,
 * the admin key or a ticket, checked by the Worker). Pushes are coalesced:
 * at most one stats update every STATS_PUSH_MS, to the stats sockets and, when
 * the audience or the live state changed, to every serving stage's shard (its
 * viewers see the count and live state on their own socket).
 */

type Role = "stats" | "broadcaster";
type Attachment = { role: Role; subscribed: boolean };

/** What the broadcaster channel can ask of the broadcast. */
export interface BroadcasterActions {
  publishState(data: Extract<BroadcasterClientMessage, { type: "publish_state" }>["data"]): Promise<Result<void>>;
  end(): Promise<unknown>;
}

const STATS_PUSH_MS = 250;

export class Channels {
  readonly #ctx: DurableObjectState;
  readonly #env: Env;
  readonly #stats: () => Stats;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #lastAudience = "";

  constructor(ctx: DurableObjectState, env: Env, stats: () => Stats) {
    this.#ctx = ctx;
    this.#env = env;
    this.#stats = stats;
  }

  /** Accepts a socket the Worker has already authorised; the Worker's `x-fanout-channel` header says which. */
  accept(request: Request): Response {
    if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket")
      return new Response("expected a WebSocket", { status: 426 });
    const role: Role = request.headers.get("x-fanout-channel") === "broadcaster" ? "broadcaster" : "stats";
    const { 0: client, 1: server } = new WebSocketPair();
    this.#ctx.acceptWebSocket(server, [role]);
    server.serializeAttachment({ role, subscribed: false } satisfies Attachment);
    return new Response(null, { status: 101, webSocket: client });
  }

  async receive(ws: WebSocket, message: string | ArrayBuffer, actions: BroadcasterActions): Promise<void> {
    const { role } = ws.deserializeAttachment() as Attachment;
    let data: unknown;
    try {
      data = JSON.parse(typeof message === "string" ? message : new TextDecoder().decode(message));
    } catch (error) {
      if (!(error instanceof SyntaxError)) throw error;
      return sendJson(ws, { type: "error", data: { message: "Messages must be JSON." } });
    }
    if (role === "stats") return this.#onStats(ws, data);
    const parsed = BroadcasterClientMessage.safeParse(data);
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
      default:
        msg satisfies never;
    }
  }

  close(ws: WebSocket, code: number): void {
    completeClose(ws, code);
  }

  toBroadcasters(message: BroadcasterServerMessage): void {
    for (const ws of this.#ctx.getWebSockets("broadcaster")) sendJson(ws, message);
  }

  /** Something the stats show changed: push, coalesced. */
  statsChanged(): void {
    if (this.#timer) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#push();
    }, STATS_PUSH_MS);
  }

  #push(): void {
    const stats = this.#stats();
    for (const ws of this.#ctx.getWebSockets("stats")) {
      if ((ws.deserializeAttachment() as Attachment).subscribed)
        sendJson(ws, { type: "stats_update", data: stats } satisfies StatsServerMessage);
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

  #onStats(ws: WebSocket, data: unknown): void {
    const parsed = StatsClientMessage.safeParse(data);
    if (!parsed.success) return this.#error(ws, 'Send {"action":"subscribe","channel":"stats"}.');
    const subscribed = parsed.data.action === "subscribe";
    ws.serializeAttachment({ role: "stats", subscribed } satisfies Attachment);
    sendJson(ws, { type: subscribed ? "subscribed" : "unsubscribed", channel: "stats" } satisfies StatsServerMessage);
    if (subscribed) sendJson(ws, { type: "stats_update", data: this.#stats() } satisfies StatsServerMessage);
  }

  #error(ws: WebSocket, message: string): void {
    sendJson(ws, { type: "error", data: { message } } satisfies StatsServerMessage | BroadcasterServerMessage);
  }
}
