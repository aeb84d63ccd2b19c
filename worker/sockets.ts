import { CLOSE } from "../protocol/messages.ts";

/**
 * What every Durable Object that holds WebSockets does the same way: send
 * without failing on a socket that is closing under it, complete the
 * closing handshake (otherwise the client sees 1006 instead of a clean close),
 * and bound what a client may send (size and rate).
 */

export const MAX_MESSAGE_BYTES = 4096;
/** Messages a socket may send per window; a studio sends a handful a minute. */
export const MAX_MESSAGES = 30;
export const MESSAGE_WINDOW_MS = 10_000;

/** The part of a socket's attachment that counts its messages. */
export interface MessageWindow {
  windowStart: number;
  messages: number;
}

/**
 * A client's message, counted and parsed: too big or too many closes the socket (CLOSE.TOO_BIG,
 * CLOSE.TOO_MANY_MESSAGES), not JSON is answered with an error; in those cases nothing is returned.
 * The new count is kept in the socket's attachment, whose other fields are left as they were.
 */
export function boundedMessage(
  ws: WebSocket,
  message: string | ArrayBuffer,
  error: (message: string) => void,
): { data: unknown } | undefined {
  const state = ws.deserializeAttachment() as MessageWindow;
  const size = typeof message === "string" ? message.length : message.byteLength;
  if (size > MAX_MESSAGE_BYTES) {
    ws.close(CLOSE.TOO_BIG, `messages are at most ${MAX_MESSAGE_BYTES} bytes`);
    return undefined;
  }
  const now = Date.now();
  const fresh = now - state.windowStart >= MESSAGE_WINDOW_MS;
  const counted = { ...state, windowStart: fresh ? now : state.windowStart, messages: fresh ? 1 : state.messages + 1 };
  if (counted.messages > MAX_MESSAGES) {
    ws.close(CLOSE.TOO_MANY_MESSAGES, "too many messages");
    return undefined;
  }
  ws.serializeAttachment(counted);
  try {
    return { data: JSON.parse(typeof message === "string" ? message : new TextDecoder().decode(message)) };
  } catch (failure) {
    if (!(failure instanceof SyntaxError)) throw failure;
    error("Messages must be JSON.");
    return undefined;
  }
}

export function sendJson(ws: WebSocket, message: unknown): void {
  try {
    ws.send(JSON.stringify(message));
  } catch (error) {
    // A socket closing under us is not the object's failure.
    if (!(error instanceof TypeError)) throw error;
  }
}

/** Answers a close from the client with the same code (1000 for the codes that may not be sent). */
export function completeClose(ws: WebSocket, code: number): void {
  try {
    ws.close(code === 1005 || code === 1006 ? 1000 : code, "bye");
  } catch (error) {
    if (!(error instanceof TypeError)) throw error;
  }
}
