import { broadcastApi, socketUrl, unwrap } from "#lib/api/client.ts";
import type { SocketLike } from "#lib/socket.ts";
import type { StudioApi } from "./session.ts";

/** The studio's calls, through the typed client; the admin key rides in a header. */
export function studioApi(broadcastId: string, adminKey: () => string | undefined, userId: string): StudioApi {
  const api = broadcastApi(broadcastId, { key: adminKey });
  return {
    ticket: async () => (await unwrap(api.POST("/broadcaster/ticket"))).ticket,
    publisherToken: (participantId, encoder) =>
      unwrap(
        api.POST("/token/publisher", {
          body: { userId, ...(participantId && { participantId }), ...(encoder && { encoder }) },
        }),
      ),
    publisherTokens: async () => (await unwrap(api.POST("/token/publisher-all"))).tokens,
    stageToken: async (stageArn, participantId) => ({
      stageArn,
      ...(await unwrap(
        api.POST("/broadcaster/stage-token", { body: { stageArn, ...(participantId && { participantId }) } }),
      )),
    }),
    endBroadcast: async () => void (await unwrap(api.POST("/broadcast/end"))),
  };
}

/** The broadcaster socket; the session sends its ticket as the first message (no secret in a URL). */
export function connectBroadcaster(broadcastId: string) {
  return (): SocketLike => new WebSocket(socketUrl(broadcastId, "/ws", { type: "broadcaster" }));
}
