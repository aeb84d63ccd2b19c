import type { Stats } from "#protocol/api.ts";
import type { StatsClientMessage, StatsServerMessage } from "#protocol/messages.ts";
import { socketUrl } from "./api/client.ts";
import { backoffDelay } from "./timing.ts";

/**
 * The operator's live stats of a broadcast over the stats channel (GET /ws), reconnecting with
 * backoff. Each connection asks for a fresh broadcaster ticket (`ticket`, with the admin key in a
 * header) and sends it in its subscribe message, never in the URL: with it the channel sends the
 * full stats (stages, publisher), without it only the public ones. Returns a function that stops watching.
 */
export function watchStats(
  broadcastId: string,
  ticket: () => Promise<string>,
  onStats: (stats: Stats) => void,
  onConnection: (connected: boolean) => void = () => {},
): () => void {
  let stopped = false;
  let attempt = 0;
  let socket: WebSocket | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const retry = () => {
    onConnection(false);
    if (!stopped) timer = setTimeout(() => void connect(), backoffDelay(attempt++));
  };
  const connect = async () => {
    let pass: string;
    try {
      pass = await ticket();
    } catch {
      return retry();
    }
    if (stopped) return;
    const ws = (socket = new WebSocket(socketUrl(broadcastId, "/ws", {})));
    ws.addEventListener("open", () => {
      attempt = 0;
      onConnection(true);
      ws.send(JSON.stringify({ action: "subscribe", channel: "stats", ticket: pass } satisfies StatsClientMessage));
    });
    ws.addEventListener("message", (event) => {
      const message = JSON.parse(String(event.data)) as StatsServerMessage;
      if (message.type === "stats_update") onStats(message.data as Stats);
    });
    ws.addEventListener("close", retry);
  };
  void connect();
  return () => {
    stopped = true;
    clearTimeout(timer);
    socket?.close(1000);
  };
}
