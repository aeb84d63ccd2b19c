/**
 * The part of a browser WebSocket the pages' controllers use: a real
 * `WebSocket` in the page, a fake in unit tests.
 */
export interface SocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: "open" | "close", listener: (event: { code?: number }) => void): void;
  addEventListener(type: "message", listener: (event: { data: unknown }) => void): void;
}

/** `WebSocket.OPEN`, without needing the browser global. */
export const SOCKET_OPEN = 1;
