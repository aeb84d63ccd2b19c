import { CLOSE, ViewerHello, type ViewerServerMessage } from "../../protocol/messages.ts";
import { sendJson } from "../sockets.ts";
import { tokenDigest } from "../tokens/proof.ts";

/**
 * A shard's viewer sockets (Hibernation API), one participant each. A socket
 * is opened for a participant the shard admitted and counts for nothing until
 * its first message proves it (`{"type":"hello","token"}`, the participant's
 * token, never in the URL). One proven socket per participant: a newer one
 * replaces the older (closed with CLOSE.REPLACED), and a socket closing ends
 * the viewer only when no other socket holds it. A socket that never proves
 * itself is closed after HELLO_TIMEOUT_MS; one that sends anything but ping
 * after its hello is closed too: viewers only ping, answered by the runtime.
 */

type Attachment = { participantId: string; proven: boolean; openedAt: number };

export const HELLO_TIMEOUT_MS = 10_000;
const MAX_MESSAGE_BYTES = 8192;

/** What the sockets need of their shard. */
export interface ViewerSocketHost {
  admitted(participantId: string): boolean;
  proves(participantId: string, digest: string): boolean;
  /** A participant's socket is proven: mark it connected and send it what it must know. */
  connected(ws: WebSocket, participantId: string): void;
  left(participantId: string): void;
}

export class ViewerSockets {
  readonly #ctx: DurableObjectState;
  readonly #host: ViewerSocketHost;

  constructor(ctx: DurableObjectState, host: ViewerSocketHost) {
    this.#ctx = ctx;
    this.#host = host;
  }

  accept(participantId: string): Response {
    if (!this.#host.admitted(participantId)) return new Response("not admitted to this stage", { status: 404 });
    // At most one socket waiting for its hello per participant: opening sockets costs an attacker nothing else.
    for (const other of this.#ctx.getWebSockets(participantId))
      if (!attachment(other).proven) other.close(CLOSE.REPLACED, "replaced by a newer connection");
    const { 0: client, 1: server } = new WebSocketPair();
    this.#ctx.acceptWebSocket(server, [participantId]);
    server.serializeAttachment({ participantId, proven: false, openedAt: Date.now() } satisfies Attachment);
    return new Response(null, { status: 101, webSocket: client });
  }

  async receive(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    const state = attachment(ws);
    const size = typeof message === "string" ? message.length : message.byteLength;
    if (size > MAX_MESSAGE_BYTES) return ws.close(CLOSE.TOO_BIG, "message too big");
    const hello = parseHello(message);
    if (state.proven) {
      // A repeated hello is harmless; anything else is not what a viewer sends.
      if (!hello) ws.close(CLOSE.PROTOCOL, "the viewer socket takes only ping after hello");
      return;
    }
    if (!hello) return ws.close(CLOSE.PROTOCOL, 'send {"type":"hello","token":"<participant token>"} first');
    if (!this.#host.proves(state.participantId, await tokenDigest(hello.token)))
      return ws.close(CLOSE.FORBIDDEN, "that token is not this participant's");
    for (const other of this.#ctx.getWebSockets(state.participantId))
      if (other !== ws) other.close(CLOSE.REPLACED, "replaced by a newer connection");
    ws.serializeAttachment({ ...state, proven: true } satisfies Attachment);
    this.#host.connected(ws, state.participantId);
  }

  /** A socket closed or failed: its viewer leaves unless another socket holds it. */
  closed(ws: WebSocket): void {
    const { participantId, proven } = attachment(ws);
    if (!proven) return;
    const held = this.#ctx
      .getWebSockets(participantId)
      .some((other) => other !== ws && other.readyState === WebSocket.OPEN && attachment(other).proven);
    if (!held) this.#host.left(participantId);
  }

  /** The sockets that proved their participant: the ones that hear pushes and count as presence. */
  proven(participantId?: string): WebSocket[] {
    return this.#ctx.getWebSockets(participantId).filter((ws) => attachment(ws).proven);
  }

  /** Sockets that never said hello are closed once their time is up. */
  closeSilent(now: number): void {
    for (const ws of this.#ctx.getWebSockets()) {
      const { proven, openedAt } = attachment(ws);
      if (!proven && now - openedAt >= HELLO_TIMEOUT_MS) ws.close(CLOSE.TIMEOUT, "no hello");
    }
  }

  send(ws: WebSocket, message: ViewerServerMessage): void {
    sendJson(ws, message);
  }

  sendAll(message: ViewerServerMessage): void {
    for (const ws of this.proven()) sendJson(ws, message);
  }
}

const attachment = (ws: WebSocket) => ws.deserializeAttachment() as Attachment;

function parseHello(message: string | ArrayBuffer): ViewerHello | undefined {
  try {
    const parsed = ViewerHello.safeParse(
      JSON.parse(typeof message === "string" ? message : new TextDecoder().decode(message)),
    );
    return parsed.success ? parsed.data : undefined;
  } catch (error) {
    if (error instanceof SyntaxError) return undefined;
    throw error;
  }
}
