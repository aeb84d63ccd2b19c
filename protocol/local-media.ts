import { z } from "zod";

/**
 * The local media protocol: what the browser's local transport and the IVS
 * emulator's events hub say to each other (docs/design.md, "Local media"). A participant joins with
 * its token, learns who else is on the stage (the publisher of the origin
 * included, on a replica stage), and negotiates WebRTC peer to peer through
 * the hub, which relays the signalling and nothing else. Production never
 * sees this: with IVS tokens the browser uses the IVS SDK.
 */

export const LocalClientMessage = z.discriminatedUnion("type", [
  z.object({ type: z.literal("join"), token: z.string().min(1) }),
  z.object({ type: z.literal("publish") }),
  z.object({ type: z.literal("unpublish") }),
  /** Token renewal in place (the SDK's `exchangeToken`): same stage, same participant. */
  z.object({ type: z.literal("exchange"), token: z.string().min(1) }),
  /** An SDP offer or answer, or an ICE candidate, for one other participant. */
  z.object({ type: z.literal("signal"), to: z.string().min(1).max(64), data: z.unknown() }),
]);
export type LocalClientMessage = z.infer<typeof LocalClientMessage>;

export interface LocalParticipant {
  participantId: string;
  userId: string;
  published: boolean;
  attributes: Record<string, string>;
  /** Set for a replica: the stage the participant actually publishes in. */
  replicaOf?: string;
}

/**
 * Why IVS ends a participant's connection, with the codes of its signalling
 * (the Web Broadcast SDK maps them to `StageLeftReason`): the same
 * participant's token connected again elsewhere (the last connection wins),
 * DisconnectParticipant, or the stage was deleted.
 */
export type DisconnectReason = "TOKEN_REUSED" | "PARTICIPANT_DISCONNECTED" | "STAGE_DELETED";

export type LocalServerMessage =
  | { type: "joined"; participantId: string; stageArn: string; sessionId: string; participants: LocalParticipant[] }
  | { type: "published"; published: boolean }
  | { type: "exchanged"; expiresAt: string }
  | { type: "participant_joined"; participant: LocalParticipant }
  | { type: "participant_left"; participantId: string }
  | { type: "participant_published"; participantId: string; published: boolean }
  | { type: "signal"; from: string; data: unknown }
  | { type: "error"; code: string; message: string }
  /** Sent just before the hub closes the connection for good; the client must not reconnect with this token. */
  | { type: "disconnect"; reason: DisconnectReason; message: string };
