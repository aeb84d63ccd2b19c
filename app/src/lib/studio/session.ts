import type { BroadcasterClientMessage, BroadcasterServerMessage, PublishState } from "#protocol/messages.ts";
import type {
  ConnectionState,
  MediaStage,
  OpenStage,
  ParticipantPublishState,
  StageStrategy,
} from "#lib/media/stage.ts";
import { tokenInfo } from "#lib/media/stage.ts";
import { SOCKET_OPEN, type SocketLike } from "#lib/socket.ts";
import { stageIdOf } from "#protocol/ids.ts";
import { backoffDelay, renewalDelay, systemClock, type Clock } from "#lib/timing.ts";

/**
 * The studio's bookkeeping, apart from any page so it is unit-tested against
 * a fake `Stage`: the origin stage and every direct-fed stage joined as a
 * publisher (joined on `stage_created`, left on `stage_deleted`), each
 * stage's publish state reported on the broadcaster socket, tokens renewed
 * before they expire (exchanged in place when the participant is kept,
 * rejoined otherwise), and the socket reconnected with backoff.
 */

export interface Grant {
  token: string;
  participantId: string;
  stageArn: string;
}

export interface StudioApi {
  /** Checks the admin key and returns a short-lived ticket for the broadcaster socket. */
  ticket(): Promise<string>;
  /** The origin's publish token; with `participantId`, a renewal for that participant. */
  publisherToken(participantId?: string): Promise<Grant & { whipEndpoint: string }>;
  /** Tokens for every stage the studio feeds itself (origin and direct-fed). */
  publisherTokens(): Promise<(Grant & { feed: "replica" | "direct" })[]>;
  stageToken(stageArn: string, participantId?: string): Promise<Grant>;
  endBroadcast(): Promise<void>;
}

/** The part of a WebSocket the studio uses (a real one in the page, a fake in tests). */
export interface StudioDeps {
  api: StudioApi;
  openStage: OpenStage;
  /** Opens the broadcaster socket; the session proves itself with a ticket in its first message. */
  connectBroadcaster(): SocketLike;
  /** The tracks to publish right now (camera or screen, microphone), as the page has them. */
  tracks(): MediaStreamTrack[];
  clock?: Clock;
  random?: () => number;
}

export interface StudioStage {
  stageArn: string;
  role: "origin" | "direct";
  participantId: string;
  /** Milliseconds since the epoch. */
  expiresAt: number;
  connection: ConnectionState;
  publishState: ParticipantPublishState;
}

export type StudioStatus = "idle" | "starting" | "live" | "stopping" | "ended" | "error";

export interface StudioState {
  status: StudioStatus;
  error?: string;
  stages: StudioStage[];
  whip?: { url: string; token: string };
  /** Whether the broadcaster socket is connected (stage announcements arrive on it). */
  socket: "connected" | "reconnecting" | "closed";
  log: { at: number; text: string }[];
}

interface Joined {
  info: StudioStage;
  stage: MediaStage;
  token: string;
  renewTimer?: unknown;
  renewAttempt: number;
}

const LOG_LIMIT = 200;

/** The SDK's publish states, as the broadcaster socket reports them. */
export const reported: Record<ParticipantPublishState, PublishState> = {
  attempting_publish: "connecting",
  published: "publishing",
  not_published: "stopped",
  errored: "failed",
};

export class StudioSession {
  readonly state: StudioState = { status: "idle", stages: [], socket: "closed", log: [] };
  #deps: StudioDeps;
  #clock: Clock;
  #random: () => number;
  #joined = new Map<string, Joined>();
  #socket?: SocketLike;
  #socketAttempt = 0;
  #socketTimer?: unknown;
  #unsent = new Map<string, BroadcasterClientMessage>();
  #listeners = new Set<(state: StudioState) => void>();
  #strategy: StageStrategy;

  constructor(deps: StudioDeps) {
    this.#deps = deps;
    this.#clock = deps.clock ?? systemClock;
    this.#random = deps.random ?? Math.random;
    this.#strategy = {
      stageStreamsToPublish: () => this.#deps.tracks(),
      shouldPublishParticipant: () => true,
      // The studio feeds stages; it watches no one.
      shouldSubscribeToParticipant: () => false,
    };
  }

  subscribe(listener: (state: StudioState) => void): () => void {
    this.#listeners.add(listener);
    listener(this.state);
    return () => this.#listeners.delete(listener);
  }

  get live(): boolean {
    return this.state.status === "live" || this.state.status === "starting";
  }

  /**
   * Goes live: checks the admin key (a ticket for the socket) before anything
   * else, so a wrong key starts nothing; then the origin, the socket, and any
   * direct-fed stages that already exist.
   */
  async start(): Promise<void> {
    if (this.live) return;
    this.#set({ status: "starting", error: undefined });
    try {
      const ticket = await this.#deps.api.ticket();
      const grant = await this.#deps.api.publisherToken();
      this.#set({ whip: { url: grant.whipEndpoint, token: grant.token } });
      await this.#join(grant, "origin");
      this.#openSocket(ticket);
      for (const other of await this.#deps.api.publisherTokens()) {
        if (other.feed === "direct" && !this.#joined.has(other.stageArn)) await this.#join(other, "direct");
      }
      this.#set({ status: "live" });
      this.#log("Live.");
    } catch (error) {
      this.#stopEverything();
      this.#set({ status: "error", error: (error as Error).message });
      this.#log(`Could not go live: ${(error as Error).message}`);
    }
  }

  /** Stops: ends the broadcast (every viewer sees "ended"), leaves every stage. */
  async stop(): Promise<void> {
    if (!this.live) return;
    this.#set({ status: "stopping" });
    try {
      await this.#deps.api.endBroadcast();
    } catch (error) {
      this.#log(`Ending the broadcast failed: ${(error as Error).message}`);
    }
    this.#stopEverything();
    this.#set({ status: "ended" });
    this.#log("Broadcast ended.");
  }

  /** The tracks changed (camera toggled, screen shared): every stage publishes the new ones. */
  refresh(): void {
    for (const joined of this.#joined.values()) joined.stage.refreshStrategy();
  }

  dispose(): void {
    this.#stopEverything();
    this.#listeners.clear();
  }

  // ── stages ────────────────────────────────────────────────────────────────

  async #join(grant: Grant, role: "origin" | "direct"): Promise<void> {
    const stage = await this.#deps.openStage(grant.token, this.#strategy);
    const joined: Joined = {
      info: {
        stageArn: grant.stageArn,
        role,
        participantId: grant.participantId,
        expiresAt: tokenInfo(grant.token).expiresAt * 1000,
        connection: "connecting",
        publishState: "not_published",
      },
      stage,
      token: grant.token,
      renewAttempt: 0,
    };
    this.#joined.set(grant.stageArn, joined);
    this.#watch(joined);
    this.#publishStages();
    await stage.join();
    this.#scheduleRenewal(joined);
    this.#log(`Joined the ${role === "origin" ? "origin" : "direct-fed"} stage ${stageIdOf(grant.stageArn)}.`);
  }

  #watch(joined: Joined): void {
    const { stage } = joined;
    stage.on("stageConnectionStateChanged", (state) => {
      if (this.#joined.get(joined.info.stageArn) !== joined) return;
      joined.info.connection = state;
      this.#publishStages();
      if (state === "errored" && this.live) {
        this.#log(`Lost the connection to ${stageIdOf(joined.info.stageArn)}; joining again.`);
        void this.#renew(joined);
      }
    });
    stage.on("stageParticipantPublishStateChanged", (participant, state) => {
      if (!participant.isLocal || this.#joined.get(joined.info.stageArn) !== joined) return;
      joined.info.publishState = state;
      this.#publishStages();
      this.#report({
        type: "publish_state",
        data: { stageArn: joined.info.stageArn, state: reported[state], participantId: joined.info.participantId },
      });
    });
  }

  #leave(stageArn: string): void {
    const joined = this.#joined.get(stageArn);
    if (!joined) return;
    this.#joined.delete(stageArn);
    this.#clock.clearTimeout(joined.renewTimer);
    joined.stage.leave();
    this.#unsent.delete(stageArn);
    this.#publishStages();
  }

  // ── renewal ───────────────────────────────────────────────────────────────

  #scheduleRenewal(joined: Joined): void {
    this.#clock.clearTimeout(joined.renewTimer);
    const info = tokenInfo(joined.token);
    const delay = renewalDelay(info.issuedAt * 1000, info.expiresAt * 1000, this.#clock.now());
    joined.renewTimer = this.#clock.setTimeout(() => void this.#renew(joined), delay);
  }

  /**
   * A fresh token for the same participant is exchanged in place; a token
   * for a new participant (API tokens) means joining again with it, and
   * leaving the old connection only once the new one is up.
   */
  async #renew(joined: Joined): Promise<void> {
    const { stageArn, role, participantId } = joined.info;
    if (this.#joined.get(stageArn) !== joined) return;
    try {
      const grant =
        role === "origin"
          ? await this.#deps.api.publisherToken(participantId)
          : await this.#deps.api.stageToken(stageArn, participantId);
      if (this.#joined.get(stageArn) !== joined) return;
      if (grant.participantId === participantId && joined.info.connection === "connected") {
        await joined.stage.exchangeToken(grant.token);
        joined.token = grant.token;
        joined.info.expiresAt = tokenInfo(grant.token).expiresAt * 1000;
        joined.renewAttempt = 0;
        this.#scheduleRenewal(joined);
        this.#log(`Renewed the token for ${stageIdOf(stageArn)}.`);
      } else {
        const old = joined.stage;
        this.#joined.delete(stageArn);
        this.#clock.clearTimeout(joined.renewTimer);
        await this.#join(grant, role);
        old.leave();
      }
      if (role === "origin" && this.state.whip) {
        this.#set({ whip: { url: this.state.whip.url, token: grant.token } });
      }
      this.#publishStages();
    } catch (error) {
      // The broadcast ended (the server never restarts an ended broadcast on a renewal): stop, as on `ended`.
      if (role === "origin" && (error as { code?: string }).code === "CONFLICT") {
        this.#log(`The broadcast has ended (${(error as Error).message}).`);
        this.#stopEverything();
        this.#set({ status: "ended" });
        return;
      }
      const delay = backoffDelay(joined.renewAttempt++, undefined, this.#random);
      this.#log(`Token renewal for ${stageIdOf(stageArn)} failed (${(error as Error).message}); retrying.`);
      joined.renewTimer = this.#clock.setTimeout(() => void this.#renew(joined), delay);
    }
  }

  // ── the broadcaster socket ────────────────────────────────────────────────

  /** The ticket goes in the first message (never the URL); nothing else is sent until the server says `ready`. */
  #openSocket(ticket: string): void {
    const socket = this.#deps.connectBroadcaster();
    this.#socket = socket;
    socket.addEventListener("open", () => {
      if (this.#socket !== socket) return;
      socket.send(JSON.stringify({ type: "auth", ticket } satisfies BroadcasterClientMessage));
    });
    socket.addEventListener("message", (event) => {
      if (this.#socket !== socket) return;
      void this.#onMessage(JSON.parse(String(event.data)) as BroadcasterServerMessage);
    });
    socket.addEventListener("close", () => {
      if (this.#socket !== socket) return;
      this.#socket = undefined;
      if (!this.live) return this.#set({ socket: "closed" });
      this.#set({ socket: "reconnecting" });
      const delay = backoffDelay(this.#socketAttempt++, undefined, this.#random);
      this.#socketTimer = this.#clock.setTimeout(() => void this.#reconnectSocket(), delay);
    });
  }

  async #reconnectSocket(): Promise<void> {
    if (!this.live) return;
    try {
      this.#openSocket(await this.#deps.api.ticket());
      // Stages may have come and gone while the socket was down.
      const tokens = await this.#deps.api.publisherTokens();
      for (const t of tokens) if (t.feed === "direct" && !this.#joined.has(t.stageArn)) await this.#join(t, "direct");
      for (const joined of [...this.#joined.values()]) {
        if (joined.info.role === "direct" && !tokens.some((t) => t.stageArn === joined.info.stageArn)) {
          this.#leave(joined.info.stageArn);
        }
      }
    } catch (error) {
      // A key that no longer opens the API (revoked, rotated) will not open it on the next try either.
      if ((error as { status?: number }).status === 401) {
        this.#log("The admin key was refused: stage announcements stopped. Enter the key again to resume.");
        return this.#set({ socket: "closed", error: "The admin key was refused. Enter it again to resume." });
      }
      this.#log(`The broadcaster channel could not reconnect (${(error as Error).message}); retrying.`);
      const delay = backoffDelay(this.#socketAttempt++, undefined, this.#random);
      this.#socketTimer = this.#clock.setTimeout(() => void this.#reconnectSocket(), delay);
    }
  }

  async #onMessage(message: BroadcasterServerMessage): Promise<void> {
    switch (message.type) {
      case "stage_created": {
        const { stageArn, feed, token, participantId } = message.data;
        this.#log(`Stage ${stageIdOf(stageArn)} created (${feed} feed).`);
        if (feed !== "direct" || !token || !participantId || this.#joined.has(stageArn)) return;
        try {
          await this.#join({ stageArn, token, participantId }, "direct");
        } catch (error) {
          this.#log(`Could not join ${stageIdOf(stageArn)}: ${(error as Error).message}`);
        }
        return;
      }
      case "stage_deleted":
        this.#log(`Stage ${stageIdOf(message.data.stageArn)} deleted.`);
        this.#leave(message.data.stageArn);
        return;
      case "ended":
        this.#log("The broadcast was ended.");
        this.#stopEverything();
        this.#set({ status: "ended" });
        return;
      case "ready": {
        const socket = this.#socket;
        if (!socket) return;
        this.#socketAttempt = 0;
        this.#set({ socket: "connected" });
        for (const unsent of this.#unsent.values()) socket.send(JSON.stringify(unsent));
        this.#unsent.clear();
        return;
      }
      case "error":
        this.#log(`Server: ${message.data.message}`);
        return;
      default:
        message satisfies never;
    }
  }

  #report(message: BroadcasterClientMessage & { type: "publish_state" }): void {
    const socket = this.#socket;
    if (socket?.readyState === SOCKET_OPEN && this.state.socket === "connected") socket.send(JSON.stringify(message));
    else this.#unsent.set(message.data.stageArn, message);
  }

  // ──────────────────────────────────────────────────────────────────────────

  #stopEverything(): void {
    for (const stageArn of [...this.#joined.keys()]) this.#leave(stageArn);
    this.#clock.clearTimeout(this.#socketTimer);
    const socket = this.#socket;
    this.#socket = undefined;
    socket?.close(1000, "studio stopped");
    this.#set({ socket: "closed" });
  }

  #publishStages(): void {
    this.#set({ stages: [...this.#joined.values()].map((j) => ({ ...j.info })) });
  }

  #log(text: string): void {
    const log = [{ at: this.#clock.now(), text }, ...this.state.log].slice(0, LOG_LIMIT);
    this.#set({ log });
  }

  #set(patch: Partial<StudioState>): void {
    Object.assign(this.state, patch);
    for (const listener of this.#listeners) listener(this.state);
  }
}
