/**
 * One media transport for the pages, shaped like the IVS Web Broadcast SDK's
 * `Stage` (join, leave, refreshStrategy, exchangeToken, events named as the
 * SDK names them). Two implementations: the SDK itself on IVS
 * (ivs-stage.ts), and WebRTC peer to peer through the emulator's signalling
 * hub for local development (local-stage.ts). The token decides which
 * (open-stage.ts); no page knows.
 */

/**
 * The SDK's connection states. `errored` is transient: the SDK reconnects by
 * itself (errored → connecting → connected) and publishes again; it gives up
 * after about 30 s of failed attempts, and then leaves (`stageLeft`). Answering
 * `errored` with a second `Stage` for the same participant makes the two
 * connections kick each other (the last connection wins).
 */
export type ConnectionState = "disconnected" | "connecting" | "connected" | "errored";

/**
 * Why a stage connection ended for good (the SDK's `StageLeftReason` values):
 * the page left; the same participant's token connected elsewhere; the
 * participant was disconnected (DisconnectParticipant); the stage was
 * deleted; a token exchange was refused; or anything else, the SDK's
 * reconnection giving up included.
 */
const LEFT_REASONS = [
  "user-initiated",
  "token-reused",
  "participant-disconnected",
  "stage-deleted",
  "failed-exchange",
  "unknown",
] as const;
export type StageLeftReason = (typeof LEFT_REASONS)[number];

/** The SDK may add reasons; the pages treat any they do not know as `unknown`. */
export function leftReason(value: string): StageLeftReason {
  return (LEFT_REASONS as readonly string[]).includes(value) ? (value as StageLeftReason) : "unknown";
}

export type ParticipantPublishState = "not_published" | "attempting_publish" | "published" | "errored";

export interface StageParticipant {
  id: string;
  userId: string;
  isLocal: boolean;
  isPublishing: boolean;
}

/** What to publish and whom to receive; asked again on `refreshStrategy()`. */
export interface StageStrategy {
  stageStreamsToPublish(): MediaStreamTrack[];
  shouldPublishParticipant(participant: StageParticipant): boolean;
  shouldSubscribeToParticipant(participant: StageParticipant): boolean;
}

/** The SDK's `StageEvents` we use, with the SDK's names and payloads (tracks in place of `StageStream`s). */
export interface StageEventMap {
  stageConnectionStateChanged: [state: ConnectionState];
  stageParticipantJoined: [participant: StageParticipant];
  stageParticipantLeft: [participant: StageParticipant];
  stageParticipantStreamsAdded: [participant: StageParticipant, tracks: MediaStreamTrack[]];
  stageParticipantStreamsRemoved: [participant: StageParticipant, tracks: MediaStreamTrack[]];
  stageParticipantPublishStateChanged: [participant: StageParticipant, state: ParticipantPublishState];
  /** The connection ended for good, and why; followed by `disconnected`. */
  stageLeft: [reason: StageLeftReason];
}
export type StageEvent = keyof StageEventMap;
export type StageListener<E extends StageEvent> = (...args: StageEventMap[E]) => void;

export interface MediaStage {
  readonly transport: "ivs" | "local";
  join(): Promise<void>;
  leave(): void;
  refreshStrategy(): void;
  /** Swaps in a renewed token for the same participant without leaving. */
  exchangeToken(token: string): Promise<void>;
  on<E extends StageEvent>(event: E, listener: StageListener<E>): void;
  off<E extends StageEvent>(event: E, listener: StageListener<E>): void;
}

export type OpenStage = (token: string, strategy: StageStrategy) => Promise<MediaStage>;

/** A small typed emitter for the stage implementations. */
export class Emitter {
  #listeners = new Map<StageEvent, Set<(...args: unknown[]) => void>>();
  on<E extends StageEvent>(event: E, listener: StageListener<E>): void {
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, (set = new Set()));
    set.add(listener as unknown as (...args: unknown[]) => void);
  }
  off<E extends StageEvent>(event: E, listener: StageListener<E>): void {
    this.#listeners.get(event)?.delete(listener as unknown as (...args: unknown[]) => void);
  }
  emit<E extends StageEvent>(event: E, ...args: StageEventMap[E]): void {
    for (const listener of this.#listeners.get(event) ?? []) listener(...args);
  }
}

/** What a page may read from a participant token (a JWT): never verified here, only looked at. */
export interface TokenInfo {
  participantId: string;
  stageArn: string;
  eventsUrl?: string;
  whipUrl?: string;
  userId?: string;
  canPublish: boolean;
  /** Seconds since the epoch. */
  issuedAt: number;
  expiresAt: number;
}

export function tokenInfo(token: string): TokenInfo {
  const payload = token.split(".")[1];
  if (!payload) throw new Error("not a participant token");
  const json = atob(
    payload
      .replace(/-/g, "+")
      .replace(/_/g, "/")
      .padEnd(Math.ceil(payload.length / 4) * 4, "="),
  );
  const claims = JSON.parse(json) as {
    jti?: string;
    resource?: string;
    events_url?: string;
    whip_url?: string;
    user_id?: string;
    capabilities?: { allow_publish?: boolean };
    iat?: number;
    exp?: number;
  };
  return {
    participantId: claims.jti ?? "",
    stageArn: claims.resource ?? "",
    eventsUrl: claims.events_url,
    whipUrl: claims.whip_url,
    userId: claims.user_id,
    canPublish: claims.capabilities?.allow_publish === true,
    issuedAt: claims.iat ?? 0,
    expiresAt: claims.exp ?? 0,
  };
}
