import type { BroadcasterClientMessage, BroadcasterServerMessage, PublishState } from "#protocol/messages.ts";
import type {
  ConnectionState,
  MediaStage,
  OpenStage,
  ParticipantPublishState,
  StageLeftReason,
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
  /**
   * The origin's publish token; with `participantId`, a renewal for that participant. With
   * encoder `obs`, OBS's own participant (publish-only, long-lived), never the page's.
   */
  publisherToken(participantId?: string, encoder?: "studio" | "obs"): Promise<Grant & { whipEndpoint: string }>;
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
  /** Who publishes: this page (camera, screen) or OBS over WHIP with its own token. */
  encoder: "studio" | "obs";
  /** OBS's server and bearer token (encoder `obs`), and when the token expires (ms). */
  obs?: { url: string; token: string; participantId: string; expiresAt: number };
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
  /** Connected at least once: before that, the end of the connection is join()'s failure, not a leave. */
  connectedOnce?: boolean;
  /** Set while the SDK reconnects by itself after `errored`: if it neither recovers nor leaves, we start over. */
  recoveryTimer?: unknown;
  /** The connection ended for good (a `stageLeft`, or `disconnected` without one); handled once. */
  over?: boolean;
}

const LOG_LIMIT = 200;

/**
 * How long after `errored` the studio waits for the SDK's own recovery: it
 * retries for about 30 s and then leaves with a reason, which the studio
 * answers. Only if it does neither does the studio leave it and join afresh.
 */
export const RECOVERY_TIMEOUT_MS = 45_000;
/** A renewal due while the SDK is reconnecting waits for it: a second connection would kick the first. */
const RENEWAL_WHILE_RECOVERING_MS = 5_000;

/** The SDK's publish states, as the broadcaster socket reports them. */
export const reported: Record<ParticipantPublishState, PublishState> = {
  attempting_publish: "connecting",
  published: "publishing",
  not_published: "stopped",
  errored: "failed",
};

export class StudioSession {
  readonly state: StudioState = { status: "idle", stages: [], encoder: "studio", socket: "closed", log: [] };
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
    this.#set({ status: "starting", error: undefined, encoder: "studio", obs: undefined });
    try {
      const ticket = await this.#deps.api.ticket();
      const grant = await this.#deps.api.publisherToken();
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

  /**
   * Goes live with OBS (or any WHIP encoder) as the publisher: OBS gets a
   * participant of its own (so OBS and a page never kick each other), this
   * page joins no stage, and the broadcast's live state comes from IVS. The
   * page keeps the broadcaster socket (stages, the end) and shows OBS's
   * server, token and when to renew it.
   */
  async startWithObs(): Promise<void> {
    if (this.live) return;
    this.#set({ status: "starting", error: undefined, encoder: "obs", obs: undefined });
    try {
      const ticket = await this.#deps.api.ticket();
      await this.#obsGrant();
      this.#openSocket(ticket);
      this.#set({ status: "live" });
      this.#log("Live with OBS: paste the server and bearer token into OBS (Settings → Stream, Service WHIP).");
    } catch (error) {
      this.#stopEverything();
      this.#set({ status: "error", error: (error as Error).message });
      this.#log(`Could not go live with OBS: ${(error as Error).message}`);
    }
  }

  /**
   * A fresh OBS token for the same participant (replicas keep following it):
   * OBS cannot renew by itself, so the broadcaster pastes it in before the old
   * one expires; OBS reconnects with it and the old connection is let go.
   */
  async renewObsToken(): Promise<void> {
    if (this.state.encoder !== "obs" || !this.state.obs) return;
    try {
      await this.#obsGrant(this.state.obs.participantId);
      this.#log("New OBS token: paste it into OBS and restart streaming before the old one expires.");
    } catch (error) {
      this.#log(`Could not renew the OBS token: ${(error as Error).message}`);
    }
  }

  async #obsGrant(participantId?: string): Promise<void> {
    const grant = await this.#deps.api.publisherToken(participantId, "obs");
    this.#set({
      obs: {
        url: grant.whipEndpoint,
        token: grant.token,
        participantId: grant.participantId,
        expiresAt: tokenInfo(grant.token).expiresAt * 1000,
      },
    });
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
    try {
      await stage.join();
    } catch (error) {
      // A join that failed is the caller's to retry; it leaves nothing behind.
      joined.over = true;
      if (this.#joined.get(grant.stageArn) === joined) this.#joined.delete(grant.stageArn);
      stage.leave();
      this.#publishStages();
      throw error;
    }
    this.#scheduleRenewal(joined);
    this.#log(`Joined the ${role === "origin" ? "origin" : "direct-fed"} stage ${stageIdOf(grant.stageArn)}.`);
  }

  #watch(joined: Joined): void {
    const { stage } = joined;
    const current = () => this.#joined.get(joined.info.stageArn) === joined && !joined.over;
    stage.on("stageConnectionStateChanged", (state) => {
      if (!current()) return;
      const previous = joined.info.connection;
      joined.info.connection = state;
      if (state === "connected") joined.connectedOnce = true;
      if (!joined.connectedOnce) return this.#publishStages();
      this.#publishStages();
      const name = stageIdOf(joined.info.stageArn);
      if (state === "errored" && previous !== "errored" && joined.recoveryTimer === undefined) {
        // Transient: the SDK reconnects by itself. Renewing or joining again now would fight it.
        this.#log(`The connection to ${name} was interrupted; reconnecting.`);
        joined.recoveryTimer = this.#clock.setTimeout(() => {
          joined.recoveryTimer = undefined;
          if (!current() || joined.info.connection === "connected") return;
          this.#log(`${name} did not recover; joining it again.`);
          joined.over = true;
          joined.stage.leave();
          void this.#renew(joined, { rejoin: true });
        }, RECOVERY_TIMEOUT_MS);
      } else if (state === "connected" && joined.recoveryTimer !== undefined) {
        this.#clock.clearTimeout(joined.recoveryTimer);
        joined.recoveryTimer = undefined;
        this.#log(`Reconnected to ${name}.`);
      } else if (state === "disconnected") {
        // Over without a reason (an SDK that says nothing): as an unknown one.
        this.#onLeft(joined, "unknown");
      }
    });
    stage.on("stageLeft", (reason) => {
      if (current() && joined.connectedOnce) this.#onLeft(joined, reason);
    });
    stage.on("stageParticipantPublishStateChanged", (participant, state) => {
      if (!participant.isLocal || !current()) return;
      this.#setPublishState(joined, state);
    });
  }

  #setPublishState(joined: Joined, state: ParticipantPublishState): void {
    if (joined.info.publishState === state) return;
    joined.info.publishState = state;
    this.#publishStages();
    this.#report({
      type: "publish_state",
      data: { stageArn: joined.info.stageArn, state: reported[state], participantId: joined.info.participantId },
    });
  }

  /**
   * A stage connection ended for good. The studio never fights back: a token
   * reused elsewhere (another tab or device publishing as this broadcaster)
   * or a participant disconnected by the operator stops this page, saying
   * why. A deleted direct-fed stage is left; a deleted origin, a refused
   * exchange or an unknown end are joined again with a fresh token.
   */
  #onLeft(joined: Joined, reason: StageLeftReason): void {
    if (joined.over || reason === "user-initiated") return;
    joined.over = true;
    this.#clock.clearTimeout(joined.recoveryTimer);
    joined.recoveryTimer = undefined;
    const { stageArn, role } = joined.info;
    const name = stageIdOf(stageArn);
    joined.info.connection = "disconnected";
    // Said even on a token reused elsewhere: the connection that took over reports "publishing" after it.
    this.#setPublishState(joined, "not_published");
    this.#publishStages();
    switch (reason) {
      case "token-reused":
        return this.#halt(
          "Another studio took over this broadcast: the same publisher connected from another tab or device. This page stopped publishing; go live here again to take it back.",
        );
      case "participant-disconnected":
        if (role === "direct") {
          this.#log(`The server disconnected this studio from ${name}.`);
          return this.#leave(stageArn);
        }
        return this.#halt("The server disconnected this publisher. Go live again to start a new session.");
      case "stage-deleted":
        if (role === "direct") {
          this.#log(`Stage ${name} was deleted.`);
          return this.#leave(stageArn);
        }
        this.#log(`The origin stage ${name} is gone; asking for the broadcast's current one.`);
        break;
      default:
        this.#log(`The connection to ${name} ended (${reason}); joining it again.`);
    }
    void this.#renew(joined, { rejoin: true });
  }

  /** Stops this page's publishing (never the broadcast: someone else may be carrying it), and says why. */
  #halt(reason: string): void {
    this.#log(reason);
    this.#stopEverything();
    this.#set({ status: "error", error: reason });
  }

  #leave(stageArn: string): void {
    const joined = this.#joined.get(stageArn);
    if (!joined) return;
    this.#joined.delete(stageArn);
    this.#clock.clearTimeout(joined.renewTimer);
    this.#clock.clearTimeout(joined.recoveryTimer);
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
   * leaving the old connection only once the new one is up. With `rejoin`
   * the old connection is over already: a new `Stage` joins with the token.
   */
  async #renew(joined: Joined, options: { rejoin?: boolean } = {}): Promise<void> {
    const { stageArn, role, participantId } = joined.info;
    if (this.#joined.get(stageArn) !== joined) return;
    if (!options.rejoin && (joined.info.connection === "errored" || joined.info.connection === "connecting")) {
      joined.renewTimer = this.#clock.setTimeout(() => void this.#renew(joined), RENEWAL_WHILE_RECOVERING_MS);
      return;
    }
    try {
      const grant =
        role === "origin"
          ? await this.#deps.api.publisherToken(participantId)
          : await this.#deps.api.stageToken(stageArn, participantId);
      if (this.#joined.get(stageArn) !== joined) return;
      if (!options.rejoin && grant.participantId === participantId && joined.info.connection === "connected") {
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
        this.#clock.clearTimeout(joined.recoveryTimer);
        try {
          await this.#join(grant, role);
        } catch (error) {
          // Keep the old entry (still connected, or over and to be joined again) for the next try.
          if (!this.#joined.has(stageArn)) this.#joined.set(stageArn, joined);
          throw error;
        }
        // A rejoin follows a connection that is over (or left by the recovery timeout) already.
        if (!options.rejoin) old.leave();
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
      joined.renewTimer = this.#clock.setTimeout(() => void this.#renew(joined, options), delay);
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
      // Stages may have come and gone while the socket was down (OBS feeds the origin only).
      if (this.state.encoder === "obs") return;
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
        if (feed === "direct" && this.state.encoder === "obs") {
          // OBS publishes to one stage: a stage replication cannot feed waits for it to work.
          this.#log(`Stage ${stageIdOf(stageArn)} needs a direct feed, which OBS cannot send; its viewers wait.`);
          return;
        }
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
