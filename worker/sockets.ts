/**
 * What every Durable Object that holds WebSockets does the same way: send
 * without failing on a socket that is closing under it, and complete the
 * closing handshake (otherwise the client sees 1006 instead of a clean close).
 */

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
