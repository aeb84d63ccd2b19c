import { broadcastApi, socketUrl, unwrap } from "#lib/api/client.ts";
import type { SocketLike } from "#lib/socket.ts";
import type { ViewerApi } from "./session.ts";

/** The viewer's calls, through the typed client. */
export function viewerApi(broadcastId: string, userId: string, viewerKey?: string): ViewerApi {
  // A deployment with VIEWER_ACCESS=key: the share link carried the viewer key in its fragment.
  const api = broadcastApi(broadcastId, { key: () => viewerKey });
  return {
    join: (stageArn) => unwrap(api.POST("/token/viewer", { body: { userId, ...(stageArn && { stageArn }) } })),
    renew: (stageArn, participantId, token) =>
      unwrap(api.POST("/token/viewer/renew", { body: { userId, stageArn, participantId, token } })),
  };
}

export function connectViewer(broadcastId: string) {
  return (stageArn: string, participantId: string): SocketLike =>
    new WebSocket(socketUrl(broadcastId, "/viewer/ws", { stageArn, participantId }));
}
