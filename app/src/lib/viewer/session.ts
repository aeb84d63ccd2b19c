import { VIEWER_PING, VIEWER_PONG, type ViewerServerMessage } from "#protocol/messages.ts";
import type { ConnectionState, MediaStage, OpenStage, StageLeftReason, StageStrategy } from "#lib/media/stage.ts";
import { tokenInfo } from "#lib/media/stage.ts";
import type { SocketLike } from "#lib/socket.ts";
import { backoffDelay, renewalDelay, systemClock, type Backoff, type Clock } from "#lib/timing.ts";

/**
 * A viewer's connection to the broadcast, apart from the page: a token from
 * the join path, the stage it names (subscribing to the publisher, a replica
 * of it on an edge stage), and the viewer socket (presence, viewer count,
 * live/ended, migrate). Recovers by itself: reconnects with capped, jittered
 * backoff; renews the token before it expires; moves to another stage
 * without a gap (the new stage plays before the old one is left).
 */

export interface ViewerGrant {
  token: string;
  participantId: string;
  stageArn: string;
  currentViewers: number;
}

export interface ViewerApi {
  /** A token on a stage chosen by load, or on `stageArn`. */
  join(stageArn?: string): Promise<ViewerGrant>;
  /** A renewed token, proven by the current one: the same participant (exchange it) or a new one (rejoin). */
  renew(stageArn: string, participantId: string, token: string): Promise<ViewerGrant>;
}

export interface ViewerDeps {
  api: ViewerApi;
  openStage: OpenStage;
  connectViewer(stageArn: string, participantId: string): SocketLike;
  clock?: Clock;
  random?: () => number;
}

/**
 * - `connecting`: first join, nothing yet.
 * - `offline`: the broadcast has not started, or its broadcaster is not publishing.
 * - `live`: the broadcaster's media is here.
 * - `reconnecting`: the connection was lost; trying again.
 * - `ended`: the broadcaster ended the broadcast; nothing more will come.
 * - `stopped`: this viewer's connection was taken over (the same viewer opened
 *   the broadcast again elsewhere) or removed by the server; it does not come back by itself.
 */
export type ViewerStatus = "connecting" | "offline" | "live" | "reconnecting" | "ended" | "stopped";

export interface ViewerState {
  status: ViewerStatus;
  viewers: number;
  stageArn?: string;
  /** The broadcaster's tracks on the current stage. */
  tracks: MediaStreamTrack[];
  message?: string;
}

interface Connection {
  stage: MediaStage;
  socket?: SocketLike;
  stageArn: string;
  participantId: string;
  token: string;
  tracks: MediaStreamTrack[];
  live: boolean;
  renewTimer?: unknown;
  pingTimer?: unknown;
  /** Running while the SDK reconnects by itself after `errored`. */
  recoveryTimer?: unknown;
  lastPong: number;
}

/**
 * How long the viewer waits for the SDK's own recovery after `errored` (it
 * retries for about 30 s, then leaves with a reason) before joining afresh.
 */
export const RECOVERY_TIMEOUT_MS = 45_000;

/** The viewer socket is pinged this often; silence for two periods means the network is gone. */
export const PING_INTERVAL_MS = 15_000;
/** How long a migration waits for the new stage's video before switching anyway. */
export const MIGRATION_WAIT_MS = 5_000;
/** Waiting for a broadcast that has not started: polled more gently than a reconnect. */
export const OFFLINE_POLL: Partial<Backoff> = { baseMs: 2_000, capMs: 10_000 };

export class ViewerSession {
  readonly state: ViewerState = { status: "connecting", viewers: 0, tracks: [] };
  #deps: ViewerDeps;
  #clock: Clock;
  #random: () => number;
  #current?: Connection;
  #attempt = 0;
  #retryTimer?: unknown;
  #stopped = false;
  #listeners = new Set<(state: ViewerState) => void>();
  #strategy: StageStrategy = {
    stageStreamsToPublish: () => [],
    shouldPublishParticipant: () => false,
    shouldSubscribeToParticipant: (p) => p.isPublishing,
  };

  constructor(deps: ViewerDeps) {
    this.#deps = deps;
    this.#clock = deps.clock ?? systemClock;
    this.#random = deps.random ?? Math.random;
  }

  subscribe(listener: (state: ViewerState) => void): () => void {
    this.#listeners.add(listener);
    listener(this.state);
    return () => this.#listeners.delete(listener);
  }

  start(): void {
    void this.#connect();
  }

  stop(): void {
    this.#stopped = true;
    this.#clock.clearTimeout(this.#retryTimer);
    if (this.#current) this.#close(this.#current);
    this.#current = undefined;
    this.#listeners.clear();
  }

  /** The browser says the network is gone (`offline`): drop the connection now rather than wait for silence. */
  networkLost(): void {
    if (this.#current) this.#lost(this.#current, "Network lost. Reconnecting when it is back…");
  }

  /** The network is back (`online`): try at once instead of waiting out the backoff. */
  networkBack(): void {
    if (this.state.status !== "reconnecting" || this.#stopped) return;
    this.#clock.clearTimeout(this.#retryTimer);
    this.#attempt = 0;
    void this.#connect();
  }

  // ── joining ───────────────────────────────────────────────────────────────

  async #connect(stageArn?: string): Promise<void> {
    if (this.#finished()) return;
    let connection: Connection | undefined;
    try {
      const grant = await this.#deps.api.join(stageArn);
      connection = await this.#establish(grant);
      if (this.#finished()) return this.#close(connection);
      this.#attempt = 0;
      this.#adopt(connection);
    } catch (error) {
      if (connection) this.#close(connection);
      const failure = error as Error & { code?: string; retryAfterSeconds?: number };
      if (failure.code === "NOT_FOUND") {
        // Not started yet (or over): wait for it, gently.
        this.#set({ status: "offline", message: "The broadcast has not started yet.", tracks: [] });
        this.#retry(backoffDelay(this.#attempt++, OFFLINE_POLL, this.#random));
      } else {
        const delay = Math.max(
          backoffDelay(this.#attempt++, undefined, this.#random),
          (failure.retryAfterSeconds ?? 0) * 1000,
        );
        this.#set({ status: "reconnecting", message: failure.message, tracks: [] });
        this.#retry(delay);
      }
    }
  }

  /** Stopped by the page, the broadcast ended, or this viewer's place taken: nothing more to connect to. */
  #finished(): boolean {
    return this.#stopped || this.state.status === "ended" || this.state.status === "stopped";
  }

  #retry(delay: number): void {
    this.#clock.clearTimeout(this.#retryTimer);
    this.#retryTimer = this.#clock.setTimeout(() => void this.#connect(), delay);
  }

  /** Joins the stage a grant names and opens its viewer socket; resolves once both are up. */
  async #establish(grant: ViewerGrant): Promise<Connection> {
    const stage = await this.#deps.openStage(grant.token, this.#strategy);
    const connection: Connection = {
      stage,
      stageArn: grant.stageArn,
      participantId: grant.participantId,
      token: grant.token,
      tracks: [],
      live: false,
      lastPong: this.#clock.now(),
    };
    stage.on("stageParticipantStreamsAdded", (participant, tracks) => {
      if (participant.isLocal) return;
      connection.tracks = [...connection.tracks.filter((t) => !tracks.some((n) => n.kind === t.kind)), ...tracks];
      if (connection === this.#current) this.#showMedia();
    });
    stage.on("stageParticipantStreamsRemoved", (_participant, tracks) => {
      connection.tracks = connection.tracks.filter((t) => !tracks.includes(t));
      if (connection === this.#current) this.#showMedia();
    });
    stage.on("stageConnectionStateChanged", (state: ConnectionState) => this.#onConnection(connection, state));
    stage.on("stageLeft", (reason) => this.#onLeft(connection, reason));
    await stage.join();
    const socket = this.#deps.connectViewer(grant.stageArn, grant.participantId);
    connection.socket = socket;
    // The socket counts for this participant once its first message proves it: the token, never in the URL.
    socket.addEventListener("open", () => socket.send(JSON.stringify({ type: "hello", token: connection.token })));
    socket.addEventListener("message", (event) => {
      if (event.data === VIEWER_PONG) {
        connection.lastPong = this.#clock.now();
        return;
      }
      let message: ViewerServerMessage;
      try {
        message = JSON.parse(String(event.data)) as ViewerServerMessage;
      } catch {
        return;
      }
      this.#onMessage(connection, message);
    });
    socket.addEventListener("close", (event) => {
      if (event.code !== 1000) this.#lost(connection, "Connection lost. Reconnecting…");
    });
    this.#set({ viewers: grant.currentViewers });
    return connection;
  }

  #adopt(connection: Connection): void {
    const previous = this.#current;
    this.#current = connection;
    this.#set({ stageArn: connection.stageArn, message: undefined });
    this.#showMedia();
    this.#scheduleRenewal(connection);
    this.#schedulePing(connection);
    if (previous && previous !== connection) this.#close(previous);
  }

  /**
   * `errored` is the SDK reconnecting by itself, as the same participant: the
   * viewer waits (a new participant now would be a second connection), and
   * joins afresh only if it neither recovers nor leaves in time.
   */
  #onConnection(connection: Connection, state: ConnectionState): void {
    if (connection !== this.#current || this.#finished()) return;
    if (state === "errored" && connection.recoveryTimer === undefined) {
      this.#set({ status: "reconnecting", message: "Connection interrupted. Reconnecting…", tracks: [] });
      connection.recoveryTimer = this.#clock.setTimeout(() => {
        connection.recoveryTimer = undefined;
        this.#lost(connection, "Connection lost. Reconnecting…");
      }, RECOVERY_TIMEOUT_MS);
    } else if (state === "connected" && connection.recoveryTimer !== undefined) {
      this.#clock.clearTimeout(connection.recoveryTimer);
      connection.recoveryTimer = undefined;
      this.#showMedia();
    } else if (state === "disconnected") {
      this.#lost(connection, "Connection lost. Reconnecting…");
    }
  }

  /**
   * The connection ended for good. Taken over by the same viewer elsewhere, or
   * removed by the server: stop and say so (joining again would fight it).
   * Any other end (the stage deleted, the SDK gave up): join again.
   */
  #onLeft(connection: Connection, reason: StageLeftReason): void {
    if (connection !== this.#current || this.#finished() || reason === "user-initiated") return;
    if (reason === "token-reused" || reason === "participant-disconnected") {
      this.#current = undefined;
      this.#close(connection);
      this.#clock.clearTimeout(this.#retryTimer);
      const message =
        reason === "token-reused"
          ? "You are watching this broadcast in another window; this one stopped."
          : "The broadcast's server ended this viewer's connection.";
      this.#set({ status: "stopped", tracks: [], message });
      return;
    }
    this.#lost(connection, "Connection lost. Reconnecting…");
  }

  #close(connection: Connection): void {
    this.#clock.clearTimeout(connection.renewTimer);
    this.#clock.clearTimeout(connection.pingTimer);
    this.#clock.clearTimeout(connection.recoveryTimer);
    const socket = connection.socket;
    connection.socket = undefined;
    if (socket && socket.readyState <= 1) socket.close(1000, "left");
    connection.stage.leave();
  }

  #lost(connection: Connection, message: string): void {
    if (connection !== this.#current || this.#finished()) return;
    this.#current = undefined;
    this.#close(connection);
    this.#set({ status: "reconnecting", message, tracks: [] });
    this.#retry(backoffDelay(this.#attempt++, undefined, this.#random));
  }

  // ── the viewer socket ─────────────────────────────────────────────────────

  #onMessage(connection: Connection, message: ViewerServerMessage): void {
    switch (message.type) {
      case "welcome":
        connection.live = message.data.live;
        this.#set({ viewers: message.data.viewers });
        if (message.data.state === "draining" && connection === this.#current) void this.#migrate(connection);
        break;
      case "viewers":
        if (connection === this.#current) this.#set({ viewers: message.data.count });
        break;
      case "live":
        connection.live = message.data.live;
        break;
      case "migrate":
        void this.#migrate(connection, message.data.stageArn);
        return;
      case "ended":
        if (connection !== this.#current) return;
        this.#current = undefined;
        this.#close(connection);
        this.#clock.clearTimeout(this.#retryTimer);
        this.#set({ status: "ended", tracks: [], message: "The broadcast has ended." });
        return;
      default:
        message satisfies never;
    }
    if (connection === this.#current) this.#showMedia();
  }

  /** Seamless migration: join the new stage, wait for its video (a few seconds at most), then leave the old. */
  async #migrate(from: Connection, stageArn?: string): Promise<void> {
    if (from !== this.#current) return;
    try {
      const next = await this.#establish(await this.#deps.api.join(stageArn));
      if (from !== this.#current) return this.#close(next);
      const deadline = this.#clock.now() + MIGRATION_WAIT_MS;
      while (!next.tracks.some((t) => t.kind === "video") && this.#clock.now() < deadline && from === this.#current) {
        await new Promise((resolve) => this.#clock.setTimeout(() => resolve(undefined), 100));
      }
      if (from !== this.#current) return this.#close(next);
      this.#adopt(next);
    } catch {
      // No other stage right now: stay where we are; the drain timeout will send us on.
    }
  }

  #schedulePing(connection: Connection): void {
    connection.pingTimer = this.#clock.setTimeout(() => {
      if (connection !== this.#current) return;
      if (this.#clock.now() - connection.lastPong > 2 * PING_INTERVAL_MS) {
        return this.#lost(connection, "Connection lost. Reconnecting…");
      }
      if (connection.socket?.readyState === 1) connection.socket.send(VIEWER_PING);
      this.#schedulePing(connection);
    }, PING_INTERVAL_MS);
  }

  // ── renewal ───────────────────────────────────────────────────────────────

  #scheduleRenewal(connection: Connection, attempt = 0): void {
    const info = tokenInfo(connection.token);
    const delay =
      attempt === 0
        ? renewalDelay(info.issuedAt * 1000, info.expiresAt * 1000, this.#clock.now())
        : backoffDelay(attempt, undefined, this.#random);
    connection.renewTimer = this.#clock.setTimeout(() => void this.#renew(connection, attempt), delay);
  }

  async #renew(connection: Connection, attempt: number): Promise<void> {
    if (connection !== this.#current) return;
    try {
      const grant = await this.#deps.api.renew(connection.stageArn, connection.participantId, connection.token);
      if (connection !== this.#current) return;
      if (grant.participantId === connection.participantId) {
        await connection.stage.exchangeToken(grant.token);
        connection.token = grant.token;
        this.#scheduleRenewal(connection);
      } else {
        // A new participant (API tokens): join with it, then leave the old one.
        const next = await this.#establish(grant);
        if (connection !== this.#current) return this.#close(next);
        this.#adopt(next);
      }
    } catch {
      if (connection === this.#current) this.#scheduleRenewal(connection, attempt + 1);
    }
  }

  // ──────────────────────────────────────────────────────────────────────────

  #showMedia(): void {
    const connection = this.#current;
    if (!connection) return;
    const playing = connection.tracks.some((t) => t.kind === "video");
    const status: ViewerStatus = playing || connection.live ? "live" : "offline";
    this.#set({
      status,
      tracks: playing ? connection.tracks : [],
      message: status === "offline" ? "The broadcaster is not live right now." : undefined,
    });
  }

  #set(patch: Partial<ViewerState>): void {
    Object.assign(this.state, patch);
    for (const listener of this.#listeners) listener(this.state);
  }
}
