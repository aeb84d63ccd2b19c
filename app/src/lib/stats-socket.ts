import type { Stats } from "#protocol/api.ts";
import type { StatsServerMessage } from "#protocol/messages.ts";
import { socketUrl } from "./api/client.ts";
import { backoffDelay } from "./timing.ts";

/**
 * Live stats of a broadcast over the stats channel (GET /ws, the integrator contract),
 * reconnecting with backoff. Returns a function that stops watching.
 */
export function watchStats(
  broadcastId: string,
  onStats: (stats: Stats) => void,
  onConnection: (connected: boolean) => void = () => {},
): () => void {
  let stopped = false;
  let attempt = 0;
  let socket: WebSocket | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const connect = () => {
    socket = new WebSocket(socketUrl(broadcastId, "/ws", {}));
    socket.addEventListener("open", () => {
      attempt = 0;
      onConnection(true);
      socket!.send(JSON.stringify({ action: "subscribe", channel: "stats" }));
    });
    socket.addEventListener("message", (event) => {
      const message = JSON.parse(String(event.data)) as StatsServerMessage;
      if (message.type === "stats_update") onStats(message.data);
    });
    socket.addEventListener("close", () => {
      onConnection(false);
      if (!stopped) timer = setTimeout(connect, backoffDelay(attempt++));
    });
  };
  connect();
  return () => {
    stopped = true;
    clearTimeout(timer);
    socket?.close(1000);
  };
}
