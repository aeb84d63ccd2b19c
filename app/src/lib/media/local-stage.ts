import type { DisconnectReason, LocalParticipant, LocalServerMessage } from "#protocol/local-media.ts";
import { backoffDelay } from "../timing.ts";
import {
  Emitter,
  tokenInfo,
  type ConnectionState,
  type MediaStage,
  type StageLeftReason,
  type StageParticipant,
  type StageStrategy,
} from "./stage.ts";

/**
 * Local media (docs/design.md, "Local media"): the emulator's signalling hub at the token's
 * `events_url` tells who is on the stage (on a replica stage, the origin's
 * publisher too) and relays SDP between participants, which connect with
 * WebRTC peer to peer. The subscriber makes the offer (receive-only audio and
 * video); the publisher answers with its tracks. Offers and answers carry
 * their candidates (no trickle): on one machine gathering takes milliseconds.
 */

type Signal = { kind: "offer" | "answer"; sdp: string };

interface Remote {
  info: LocalParticipant;
  /** The connection we receive this participant on (we offered). */
  inbound?: RTCPeerConnection;
  inboundTracks: MediaStreamTrack[];
  /** The connection this participant receives us on (it offered). */
  outbound?: RTCPeerConnection;
}

const GATHER_TIMEOUT_MS = 2_000;

/**
 * How long a lost connection is retried before the transport gives up and
 * leaves: the IVS Web Broadcast SDK retries internally for up to 30 seconds
 * before it reports a FAILED error (AWS, "Error Handling in the IVS Web
 * Broadcast SDK"). This transport behaves the same, so the pages are tested
 * against the behaviour they meet in production.
 */
export const RECONNECT_WINDOW_MS = 30_000;
const RECONNECT_BACKOFF = { baseMs: 250, capMs: 4_000 };

export interface LocalStageOptions {
  reconnectWindowMs?: number;
  random?: () => number;
}

const LEFT_FOR: Record<DisconnectReason, StageLeftReason> = {
  TOKEN_REUSED: "token-reused",
  PARTICIPANT_DISCONNECTED: "participant-disconnected",
  STAGE_DELETED: "stage-deleted",
};

/**
 * Whether a closed connection is over for good, and why: a refusal of the
 * token (revoked, stage gone) or of an exchange, or an error the hub chose.
 * A connection that just dropped (1006: the network) is not: it is retried.
 */
function finalReason(code: number, reason: string, exchanging: boolean): StageLeftReason | undefined {
  if (code === 1006 || code === 1001 || code === 1011 || code === 1012 || code === 1013) return undefined;
  if (exchanging) return "failed-exchange";
  if (code === 4401 && reason === "revoked") return "participant-disconnected";
  if (code === 4401 && reason === "wrong_stage") return "stage-deleted";
  return "unknown";
}

export class LocalStage implements MediaStage {
  readonly transport = "local";
  #token: string;
  #strategy: StageStrategy;
  #events = new Emitter();
  #ws?: WebSocket;
  #state: ConnectionState = "disconnected";
  #self?: StageParticipant;
  #publishing = false;
  #remotes = new Map<string, Remote>();
  /** Viewers of replica stages we send to: not on this stage, so never announced by the hub. */
  #replicaViewers = new Map<string, Remote>();
  #pending?: { resolve: () => void; reject: (error: Error) => void; type: "joined" | "exchanged" };
  #options: Required<LocalStageOptions>;
  /** Joined at least once: from then on a lost connection is retried, not reported to `join()`. */
  #joinedOnce = false;
  /** Left for good (by the page, or for a reason the hub gave): nothing reconnects. */
  #left = false;
  /** The reason the hub gave in its last words (`disconnect`), before it closed the connection. */
  #disconnectReason?: StageLeftReason;
  #erroredSince?: number;
  #attempt = 0;
  #retryTimer?: ReturnType<typeof setTimeout>;

  constructor(token: string, strategy: StageStrategy, options: LocalStageOptions = {}) {
    this.#token = token;
    this.#strategy = strategy;
    this.#options = { reconnectWindowMs: RECONNECT_WINDOW_MS, random: Math.random, ...options };
  }

  on: MediaStage["on"] = (event, listener) => this.#events.on(event, listener);
  off: MediaStage["off"] = (event, listener) => this.#events.off(event, listener);

  join(): Promise<void> {
    if (!tokenInfo(this.#token).eventsUrl) return Promise.reject(new Error("This token names no events endpoint."));
    this.#left = false;
    this.#setState("connecting");
    this.#open();
    return new Promise((resolve, reject) => (this.#pending = { resolve, reject, type: "joined" }));
  }

  leave(): void {
    const wasConnected = this.#state !== "disconnected";
    this.#left = true;
    clearTimeout(this.#retryTimer);
    const ws = this.#ws;
    this.#ws = undefined;
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000, "left");
    this.#teardown(this.#state);
    if (wasConnected) this.#events.emit("stageLeft", "user-initiated");
    this.#setState("disconnected");
  }

  #open(): void {
    const ws = new WebSocket(tokenInfo(this.#token).eventsUrl!);
    this.#ws = ws;
    this.#disconnectReason = undefined;
    ws.addEventListener("open", () => ws.send(JSON.stringify({ type: "join", token: this.#token })));
    ws.addEventListener("message", (event) => {
      if (this.#ws === ws) void this.#receive(JSON.parse(String(event.data)) as LocalServerMessage);
    });
    ws.addEventListener("close", (event) => {
      if (this.#ws !== ws) return;
      this.#ws = undefined;
      this.#closed(event.code, event.reason);
    });
  }

  /**
   * The connection closed without the page leaving. Before the first join
   * this is join()'s failure; after it, either the end (a reason the hub
   * gave, a refused token) or a lost connection: `errored`, then connecting
   * again with the same token, until the reconnect window runs out.
   */
  #closed(code: number, reason: string): void {
    const pending = this.#pending;
    this.#pending = undefined;
    if (!this.#joinedOnce) {
      pending?.reject(new Error(reason || "Could not connect to the stage."));
      this.#teardown("disconnected");
      return;
    }
    const final = this.#disconnectReason ?? finalReason(code, reason, pending?.type === "exchanged");
    pending?.reject(new Error(reason || "The stage connection closed."));
    if (final) return this.#finish(final);
    const now = Date.now();
    this.#erroredSince ??= now;
    this.#teardown("errored");
    if (now - this.#erroredSince >= this.#options.reconnectWindowMs) return this.#finish("unknown");
    const delay = backoffDelay(this.#attempt++, RECONNECT_BACKOFF, this.#options.random);
    this.#retryTimer = setTimeout(() => {
      if (this.#left) return;
      this.#setState("connecting");
      this.#open();
    }, delay);
  }

  /** Over for good: why, then `disconnected`. */
  #finish(reason: StageLeftReason): void {
    this.#left = true;
    clearTimeout(this.#retryTimer);
    this.#teardown(this.#state);
    this.#events.emit("stageLeft", reason);
    this.#setState("disconnected");
  }

  refreshStrategy(): void {
    if (this.#state !== "connected" || !this.#self) return;
    const wanted = this.#strategy.shouldPublishParticipant(this.#self);
    if (wanted !== this.#publishing) this.#setPublishing(wanted);
    for (const remote of this.#remotes.values()) {
      if (remote.outbound) void this.#sendTracks(remote.outbound);
      this.#reconsiderSubscription(remote);
    }
    for (const viewer of this.#replicaViewers.values()) if (viewer.outbound) void this.#sendTracks(viewer.outbound);
  }

  exchangeToken(token: string): Promise<void> {
    const ws = this.#ws;
    if (!ws || this.#state !== "connected") return Promise.reject(new Error("Not connected to the stage."));
    this.#token = token;
    ws.send(JSON.stringify({ type: "exchange", token }));
    return new Promise((resolve, reject) => (this.#pending = { resolve, reject, type: "exchanged" }));
  }

  // ── the hub ───────────────────────────────────────────────────────────────

  async #receive(message: LocalServerMessage): Promise<void> {
    switch (message.type) {
      case "joined": {
        const info = tokenInfo(this.#token);
        this.#self = { id: message.participantId, userId: info.userId ?? "", isLocal: true, isPublishing: false };
        this.#joinedOnce = true;
        this.#attempt = 0;
        this.#erroredSince = undefined;
        this.#setState("connected");
        this.#settle("joined");
        for (const p of message.participants) this.#arrive(p);
        if (this.#strategy.shouldPublishParticipant(this.#self)) this.#setPublishing(true);
        break;
      }
      case "published":
        this.#emitSelfPublishState(message.published ? "published" : "not_published");
        break;
      case "exchanged":
        this.#settle("exchanged");
        break;
      case "participant_joined":
        this.#arrive(message.participant);
        break;
      case "participant_published": {
        const remote = this.#remotes.get(message.participantId);
        if (!remote) break;
        remote.info.published = message.published;
        this.#events.emit(
          "stageParticipantPublishStateChanged",
          view(remote.info),
          message.published ? "published" : "not_published",
        );
        this.#reconsiderSubscription(remote);
        break;
      }
      case "participant_left": {
        const remote = this.#remotes.get(message.participantId);
        if (!remote) break;
        this.#closeInbound(remote);
        remote.outbound?.close();
        this.#remotes.delete(message.participantId);
        this.#events.emit("stageParticipantLeft", view(remote.info));
        break;
      }
      case "signal":
        await this.#signal(message.from, message.data as Signal);
        break;
      case "disconnect":
        this.#disconnectReason = LEFT_FOR[message.reason] ?? "unknown";
        break;
      case "error":
        // A refused exchange ends the connection (the hub closes it next), as the SDK's FAILED_EXCHANGE.
        if (this.#pending?.type === "exchanged") this.#disconnectReason = "failed-exchange";
        if (this.#pending) {
          this.#pending.reject(new Error(message.message));
          this.#pending = undefined;
        } else if (this.#publishing && message.code !== "BAD_MESSAGE") {
          this.#publishing = false;
          this.#emitSelfPublishState("errored");
        }
        break;
      default:
        message satisfies never;
    }
  }

  #settle(type: "joined" | "exchanged"): void {
    if (this.#pending?.type !== type) return;
    this.#pending.resolve();
    this.#pending = undefined;
  }

  #arrive(info: LocalParticipant): void {
    const remote: Remote = { info, inboundTracks: [] };
    this.#remotes.set(info.participantId, remote);
    this.#events.emit("stageParticipantJoined", view(info));
    this.#reconsiderSubscription(remote);
  }

  #setPublishing(on: boolean): void {
    this.#publishing = on;
    if (on) this.#emitSelfPublishState("attempting_publish");
    this.#send({ type: on ? "publish" : "unpublish" });
    if (!on) {
      for (const remote of this.#remotes.values()) this.#closeOutbound(remote);
      for (const viewer of this.#replicaViewers.values()) this.#closeOutbound(viewer);
      this.#replicaViewers.clear();
    }
  }

  #emitSelfPublishState(state: "attempting_publish" | "published" | "not_published" | "errored"): void {
    if (!this.#self) return;
    this.#self.isPublishing = state === "published";
    this.#events.emit("stageParticipantPublishStateChanged", { ...this.#self }, state);
  }

  // ── receiving: we offer ───────────────────────────────────────────────────

  #reconsiderSubscription(remote: Remote): void {
    const wanted = remote.info.published && this.#strategy.shouldSubscribeToParticipant(view(remote.info));
    if (wanted && !remote.inbound) void this.#subscribe(remote);
    if (!wanted && remote.inbound) this.#closeInbound(remote);
  }

  async #subscribe(remote: Remote): Promise<void> {
    const pc = new RTCPeerConnection();
    remote.inbound = pc;
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addTransceiver("audio", { direction: "recvonly" });
    pc.addEventListener("track", (event) => {
      remote.inboundTracks.push(event.track);
      this.#events.emit("stageParticipantStreamsAdded", view(remote.info), [event.track]);
    });
    pc.addEventListener("connectionstatechange", () => {
      // A peer that went away without a word from the hub: drop it, and offer again if it still publishes.
      if (pc.connectionState === "failed" && remote.inbound === pc) {
        this.#closeInbound(remote);
        this.#reconsiderSubscription(remote);
      }
    });
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    if (remote.inbound !== pc) return;
    this.#send({
      type: "signal",
      to: remote.info.participantId,
      data: { kind: "offer", sdp: loopbackFirst(pc.localDescription!.sdp) } satisfies Signal,
    });
  }

  #closeInbound(remote: Remote): void {
    if (!remote.inbound) return;
    remote.inbound.close();
    remote.inbound = undefined;
    const tracks = remote.inboundTracks.splice(0);
    if (tracks.length) this.#events.emit("stageParticipantStreamsRemoved", view(remote.info), tracks);
  }

  // ── publishing: we answer ─────────────────────────────────────────────────

  async #signal(from: string, signal: Signal): Promise<void> {
    if (signal.kind === "answer") {
      await this.#remotes.get(from)?.inbound?.setRemoteDescription({ type: "answer", sdp: signal.sdp });
      return;
    }
    if (!this.#publishing) return;
    // An offer from someone not on this stage is a viewer of a replica stage (the hub relays only
    // those): it gets our tracks like anyone here, and is forgotten when its connection ends.
    let remote = this.#remotes.get(from) ?? this.#replicaViewers.get(from);
    if (!remote) {
      remote = { info: { participantId: from, userId: "", published: false, attributes: {} }, inboundTracks: [] };
      this.#replicaViewers.set(from, remote);
    }
    this.#closeOutbound(remote);
    const pc = new RTCPeerConnection();
    remote.outbound = pc;
    const viewer = remote;
    pc.addEventListener("connectionstatechange", () => {
      if (pc.connectionState !== "failed" && pc.connectionState !== "closed") return;
      if (viewer.outbound === pc) this.#closeOutbound(viewer);
      if (this.#replicaViewers.get(from) === viewer) this.#replicaViewers.delete(from);
    });
    await pc.setRemoteDescription({ type: "offer", sdp: signal.sdp });
    await this.#sendTracks(pc);
    await pc.setLocalDescription(await pc.createAnswer());
    await gathered(pc);
    if (remote.outbound !== pc) return;
    this.#send({
      type: "signal",
      to: from,
      data: { kind: "answer", sdp: loopbackFirst(pc.localDescription!.sdp) } satisfies Signal,
    });
  }

  /** Puts the strategy's current tracks on a subscriber's connection, one per kind (camera off: none). */
  async #sendTracks(pc: RTCPeerConnection): Promise<void> {
    const tracks = this.#strategy.stageStreamsToPublish();
    for (const transceiver of pc.getTransceivers()) {
      const kind = transceiver.receiver.track.kind;
      transceiver.direction = "sendonly";
      await transceiver.sender.replaceTrack(tracks.find((t) => t.kind === kind) ?? null);
    }
  }

  #closeOutbound(remote: Remote): void {
    remote.outbound?.close();
    remote.outbound = undefined;
  }

  // ──────────────────────────────────────────────────────────────────────────

  #send(message: object): void {
    if (this.#ws?.readyState === WebSocket.OPEN) this.#ws.send(JSON.stringify(message));
  }

  #setState(state: ConnectionState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.#events.emit("stageConnectionStateChanged", state);
  }

  #teardown(state: ConnectionState): void {
    for (const remote of this.#remotes.values()) {
      this.#closeInbound(remote);
      this.#closeOutbound(remote);
    }
    this.#remotes.clear();
    for (const viewer of this.#replicaViewers.values()) this.#closeOutbound(viewer);
    this.#replicaViewers.clear();
    if (this.#publishing) {
      this.#publishing = false;
      this.#emitSelfPublishState("not_published");
    }
    this.#setState(state);
  }
}

const view = (info: LocalParticipant): StageParticipant => ({
  id: info.participantId,
  userId: info.userId,
  isLocal: false,
  isPublishing: info.published,
});

function gathered(pc: RTCPeerConnection): Promise<void> {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState !== "complete") return;
      pc.removeEventListener("icegatheringstatechange", done);
      resolve();
    };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, GATHER_TIMEOUT_MS);
  });
}

/**
 * Both peers run on this machine: when loopback candidates were gathered
 * (Chromium with --allow-loopback-in-peer-connection, as in the tests), only
 * those are offered, so media never leaves 127.0.0.1. Otherwise every
 * candidate stays (a developer's two tabs meet on a host address).
 */
export function loopbackFirst(sdp: string): string {
  const lines = sdp.split("\r\n");
  const address = (line: string) => line.split(" ")[4];
  const isCandidate = (line: string) => line.startsWith("a=candidate:");
  const loopback = (line: string) => ["127.0.0.1", "::1"].includes(address(line) ?? "");
  if (!lines.some((l) => isCandidate(l) && loopback(l))) return sdp;
  return lines.filter((l) => !isCandidate(l) || loopback(l)).join("\r\n");
}
