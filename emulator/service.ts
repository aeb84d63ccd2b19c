import type { DisconnectReason, LocalParticipant, LocalServerMessage } from "../protocol/local-media.ts";
import { modelled } from "./errors.ts";
import { randomId, sessionId } from "./ids.ts";
import type { Input, OperationName } from "./schemas.ts";
import type {
  Capability,
  ParticipantRecord,
  PublicKeyRecord,
  ReplicationRecord,
  SessionRecord,
  StageRecord,
  State,
} from "./state.ts";
import {
  type SigningKey,
  type TokenClaims,
  TokenRejected,
  assertP384PublicKey,
  capabilitiesOf,
  fingerprintOf,
  issueToken,
  verifyToken,
} from "./tokens.ts";
import { stageIdOf } from "../protocol/ids.ts";

/**
 * The emulated IVS Real-Time service: the operations of the API over plain
 * state, plus the participant lifecycle that the events hub drives (connect,
 * publish, disconnect). Everything here is transport-free; server.ts puts the
 * wire protocol around it.
 */

export interface Quotas {
  publishersPerStage: number;
  subscribersPerStage: number;
  stagesPerAccount: number;
  publicKeysPerAccount: number;
}

export const defaultQuotas: Quotas = {
  publishersPerStage: 12,
  subscribersPerStage: 10_000,
  stagesPerAccount: 1_000,
  publicKeysPerAccount: 100,
};

export interface ServiceOptions {
  region: string;
  accountId: string;
  /** Base URL of the emulator as clients reach it, for stage endpoints. */
  publicUrl: string;
  quotas: Quotas;
  state: State;
  signingKey: SigningKey;
  /** Called after every change to the state, to persist it. */
  onChange: () => void;
  /**
   * The most items one page of a list holds, whatever `maxResults` asks: AWS may answer a short
   * page with a `nextToken`, and a client that reads one page misses the rest. Tests set it low.
   */
  maxPageSize?: number;
  /**
   * Endpoints to report for stages created from now on, in place of the emulator's own: with
   * IVS's (`wss://global.events.live-video.net`, …) the pages take the production path, the
   * IVS Web Broadcast SDK, as far as a machine without AWS allows.
   */
  endpoints?: { events: string; whip: string };
  /**
   * Where IVS's EventBridge rule would send the stage's participant events (an API destination
   * with an API-key connection): "IVS Stage Update" events, POSTed as EventBridge delivers them.
   */
  eventBridge?: { url: string; apiKey: string };
}

/** A live participant connection, as the events hub holds it. */
export interface Connection {
  stageArn: string;
  participantId: string;
  sessionId: string;
  capabilities: Capability[];
  /** Tells the participant why and closes the transport; called when IVS disconnects the participant. */
  kick: (reason: DisconnectReason, message: string) => void;
  /** Sends a message of the local media protocol to this participant. */
  send: (message: LocalServerMessage) => void;
}

const DEFAULT_TOKEN_MINUTES = 720;
const PAGE_DEFAULT = 50;

type Output = Record<string, unknown>;

export class IvsService {
  readonly options: ServiceOptions;
  readonly #connections = new Map<string, Connection>();
  readonly #reconnectTimers = new Map<string, NodeJS.Timeout>();

  constructor(options: ServiceOptions) {
    this.options = options;
  }

  get #state(): State {
    return this.options.state;
  }

  async call<O extends OperationName>(operation: O, input: Input<O>): Promise<Output> {
    // A table keyed by operation keeps the dispatch exhaustive: a new operation without a handler does not compile.
    const handlers: { [K in OperationName]: (input: Input<K>) => Output | Promise<Output> } = {
      CreateStage: (i) => this.createStage(i),
      GetStage: (i) => ({ stage: this.#stageView(this.#stage(i.arn)) }),
      UpdateStage: (i) => this.updateStage(i),
      DeleteStage: (i) => this.deleteStage(i.arn),
      ListStages: (i) => this.listStages(i),
      CreateParticipantToken: (i) => this.createParticipantToken(i),
      ListParticipants: (i) => this.listParticipants(i),
      ListParticipantEvents: (i) => this.listParticipantEvents(i),
      GetParticipant: (i) => this.getParticipant(i),
      DisconnectParticipant: (i) => this.disconnectParticipant(i),
      ListStageSessions: (i) => this.listStageSessions(i),
      GetStageSession: (i) => ({ stageSession: sessionView(this.#session(this.#stage(i.stageArn), i.sessionId)) }),
      StartParticipantReplication: (i) => this.startReplication(i),
      StopParticipantReplication: (i) => this.stopReplication(i),
      ListParticipantReplicas: (i) => this.listReplicas(i),
      ImportPublicKey: (i) => this.importPublicKey(i),
      GetPublicKey: (i) => ({ publicKey: publicKeyView(this.#publicKey(i.arn)) }),
      DeletePublicKey: (i) => this.deletePublicKey(i.arn),
      ListPublicKeys: (i) => this.listPublicKeys(i),
      TagResource: (i) => this.tagResource(i),
      UntagResource: (i) => this.untagResource(i),
      ListTagsForResource: (i) => ({ tags: { ...this.#taggable(i.resourceArn).tags } }),
    };
    const handler = handlers[operation] as (input: Input<O>) => Output | Promise<Output>;
    return handler(input);
  }

  /** A page's size: what the caller asked for (AWS's default otherwise), never more than `maxPageSize`. */
  #pageSize(maxResults: number | undefined): number {
    return Math.min(maxResults ?? PAGE_DEFAULT, this.options.maxPageSize ?? Infinity);
  }

  // ── stages ───────────────────────────────────────────────────────────────

  async createStage(input: Input<"CreateStage">): Promise<Output> {
    if (this.#state.stages.length >= this.options.quotas.stagesPerAccount) {
      throw modelled.quota(`Stage quota of ${this.options.quotas.stagesPerAccount} per account exceeded.`);
    }
    const id = randomId(12);
    const stage: StageRecord = {
      arn: `arn:aws:ivs:${this.options.region}:${this.options.accountId}:stage/${id}`,
      name: input.name ?? "",
      tags: { ...input.tags },
      createdAt: new Date().toISOString(),
      endpoints: {
        events: this.options.endpoints?.events ?? `${this.options.publicUrl.replace(/^http/, "ws")}/events`,
        whip: this.options.endpoints?.whip ?? `${this.options.publicUrl}/whip`,
        rtmp: "",
        rtmps: "",
      },
      sessions: [],
      revoked: [],
    };
    this.#state.stages.push(stage);
    this.options.onChange();
    const configurations = input.participantTokenConfigurations ?? [];
    const participantTokens = await Promise.all(configurations.map((c) => this.#mintToken(stage, c)));
    return { stage: this.#stageView(stage), participantTokens };
  }

  updateStage(input: Input<"UpdateStage">): Output {
    const stage = this.#stage(input.arn);
    if (input.name !== undefined) stage.name = input.name;
    this.options.onChange();
    return { stage: this.#stageView(stage) };
  }

  deleteStage(arn: string): Output {
    const stage = this.#stage(arn);
    for (const replication of this.#state.replications) {
      if (
        replication.replicationState === "ACTIVE" &&
        (replication.sourceStageArn === arn || replication.destinationStageArn === arn)
      ) {
        this.#stopReplication(replication);
      }
    }
    for (const connection of [...this.#connections.values()]) {
      if (connection.stageArn === arn) connection.kick("STAGE_DELETED", "stage deleted");
    }
    this.#state.stages = this.#state.stages.filter((s) => s !== stage);
    this.options.onChange();
    return {};
  }

  listStages(input: Input<"ListStages">): Output {
    const { items, nextToken } = page(this.#state.stages, input.nextToken, this.#pageSize(input.maxResults));
    return {
      stages: items.map((s) => ({
        arn: s.arn,
        name: s.name,
        activeSessionId: activeSession(s)?.sessionId,
        tags: { ...s.tags },
      })),
      nextToken,
    };
  }

  // ── participants and tokens ──────────────────────────────────────────────

  async createParticipantToken(input: Input<"CreateParticipantToken">): Promise<Output> {
    const stage = this.#stage(input.stageArn);
    return { participantToken: await this.#mintToken(stage, input) };
  }

  async #mintToken(
    stage: StageRecord,
    config: { duration?: number; userId?: string; attributes?: Record<string, string>; capabilities?: Capability[] },
  ): Promise<Output> {
    const duration = config.duration ?? DEFAULT_TOKEN_MINUTES;
    const capabilities = config.capabilities ?? ["PUBLISH", "SUBSCRIBE"];
    const participantId = randomId(12);
    const { token, expirationTime } = await issueToken(
      this.options.signingKey,
      {
        jti: participantId,
        resource: stage.arn,
        topic: stageIdOf(stage.arn),
        events_url: stage.endpoints.events,
        whip_url: stage.endpoints.whip,
        capabilities: {
          allow_publish: capabilities.includes("PUBLISH"),
          allow_subscribe: capabilities.includes("SUBSCRIBE"),
        },
        version: "1.0",
        ...(config.userId !== undefined && { user_id: config.userId }),
        ...(config.attributes !== undefined && { attributes: config.attributes }),
      },
      duration,
    );
    return {
      participantId,
      token,
      userId: config.userId,
      attributes: config.attributes,
      duration,
      capabilities,
      expirationTime: expirationTime.toISOString(),
    };
  }

  listParticipants(input: Input<"ListParticipants">): Output {
    const stage = this.#state.stages.find((s) => s.arn === input.stageArn);
    const session = stage?.sessions.find((s) => s.sessionId === input.sessionId);
    const matching = (session?.participants ?? []).filter(
      (p) =>
        (input.filterByUserId === undefined || p.userId === input.filterByUserId) &&
        (input.filterByPublished === undefined || everPublished(p) === input.filterByPublished) &&
        (input.filterByState === undefined || p.state === input.filterByState),
    );
    const { items, nextToken } = page(matching, input.nextToken, this.#pageSize(input.maxResults));
    return { participants: items.map((p) => participantSummary(p)), nextToken };
  }

  /** A participant's events in a session, oldest first (AWS documents no order; IVS's console shows them so). */
  listParticipantEvents(input: Input<"ListParticipantEvents">): Output {
    const session = this.#session(this.#stage(input.stageArn), input.sessionId);
    const participant = session.participants.find((p) => p.participantId === input.participantId);
    const events = (participant?.events ?? []).map((e) => ({ ...e, participantId: input.participantId }));
    const { items, nextToken } = page(events, input.nextToken, this.#pageSize(input.maxResults));
    return { events: items, nextToken };
  }

  getParticipant(input: Input<"GetParticipant">): Output {
    const session = this.#session(this.#stage(input.stageArn), input.sessionId);
    const participant = session.participants.find((p) => p.participantId === input.participantId);
    if (!participant)
      throw modelled.notFound(`Participant ${input.participantId} not found in session ${input.sessionId}.`);
    return { participant: { ...participantSummary(participant), attributes: participant.attributes } };
  }

  disconnectParticipant(input: Input<"DisconnectParticipant">): Output {
    const stage = this.#stage(input.stageArn);
    if (!stage.revoked.includes(input.participantId)) stage.revoked.push(input.participantId);
    this.#connections
      .get(connectionKey(stage.arn, input.participantId))
      ?.kick("PARTICIPANT_DISCONNECTED", input.reason ?? "disconnected by the service");
    this.options.onChange();
    return {};
  }

  listStageSessions(input: Input<"ListStageSessions">): Output {
    const stage = this.#stage(input.stageArn);
    const newestFirst = [...stage.sessions].reverse();
    const { items, nextToken } = page(newestFirst, input.nextToken, this.#pageSize(input.maxResults));
    return { stageSessions: items.map(sessionView), nextToken };
  }

  /**
   * Admits a participant presenting a token: the token must verify and name an
   * existing stage, must not be revoked or already in use, and the stage must
   * have room for one more subscriber.
   */
  /** A participant token, verified against the emulator's own key or a key imported with ImportPublicKey. */
  #verify(token: string): Promise<TokenClaims> {
    return verifyToken(token, undefined, {
      emulator: this.options.signingKey,
      imported: (arn) => this.#state.publicKeys.find((k) => k.arn === arn),
    });
  }

  async connect(token: string, transport: Pick<Connection, "kick" | "send">): Promise<Connection> {
    const claims = await this.#verify(token);
    const stage = this.#state.stages.find((s) => s.arn === claims.resource);
    if (!stage) throw new TokenRejected("wrong_stage", "the token's stage does not exist");
    if (stage.revoked.includes(claims.jti))
      throw new TokenRejected("revoked", "participant was disconnected and revoked");
    const key = connectionKey(stage.arn, claims.jti);
    const session = activeSession(stage) ?? this.#startSession(stage);
    // One connection per participant, and the last one wins (as IVS does): the earlier connection is told
    // TOKEN_REUSED and closed. Its publisher state goes with it; the new connection publishes again.
    const earlier = this.#connections.get(key);
    if (earlier) {
      this.#drop(earlier, { endSession: false });
      earlier.kick("TOKEN_REUSED", "the participant's token connected again elsewhere");
    }
    const subscribers = session.participants.filter((p) => p.state === "CONNECTED" && !p.published).length;
    if (subscribers >= this.options.quotas.subscribersPerStage) {
      throw modelled.quota(`Stage is full: ${this.options.quotas.subscribersPerStage} subscribers.`);
    }
    let participant = session.participants.find((p) => p.participantId === claims.jti);
    if (!participant) {
      participant = {
        participantId: claims.jti,
        userId: claims.user_id ?? "",
        attributes: claims.attributes ?? {},
        capabilities: capabilitiesOf(claims),
        state: "CONNECTED",
        firstJoinTime: new Date().toISOString(),
        published: false,
        replicationType: "NONE",
      };
      session.participants.push(participant);
    }
    participant.state = "CONNECTED";
    recordEvent(participant, "JOINED");
    // A publisher back within its reconnect window keeps its replicas.
    const timer = this.#reconnectTimers.get(key);
    if (timer) {
      clearTimeout(timer);
      this.#reconnectTimers.delete(key);
    }
    const connection: Connection = {
      stageArn: stage.arn,
      participantId: claims.jti,
      sessionId: session.sessionId,
      capabilities: participant.capabilities,
      ...transport,
    };
    this.#connections.set(key, connection);
    this.#toStage(stage.arn, { type: "participant_joined", participant: localView(participant) }, connection);
    this.options.onChange();
    return connection;
  }

  /**
   * A connected participant swaps its token for a fresh one (the SDK's
   * `exchangeToken`): it must verify and name the same stage and participant;
   * the new capabilities apply from now on. Answers the new expiry.
   */
  async exchange(connection: Connection, token: string): Promise<string> {
    const claims = await this.#verify(token);
    if (claims.resource !== connection.stageArn || claims.jti !== connection.participantId) {
      throw new TokenRejected("wrong_participant", "the new token is for another stage or participant");
    }
    connection.capabilities = capabilitiesOf(claims);
    const participant = this.#liveParticipant(connection);
    if (participant) participant.capabilities = connection.capabilities;
    if (participant?.published && !connection.capabilities.includes("PUBLISH")) this.setPublished(connection, false);
    return new Date(claims.exp * 1000).toISOString();
  }

  setPublished(connection: Connection, published: boolean): void {
    const participant = this.#liveParticipant(connection);
    if (!participant) return;
    if (published) {
      if (!connection.capabilities.includes("PUBLISH")) {
        throw modelled.accessDenied("INSUFFICIENT_CAPABILITIES: the token does not allow publishing");
      }
      const stage = this.#stage(connection.stageArn);
      if (!participant.published && publishers(stage) >= this.options.quotas.publishersPerStage) {
        throw modelled.quota(`Stage has ${this.options.quotas.publishersPerStage} publishers already.`);
      }
    }
    if (participant.published !== published) {
      recordEvent(participant, published ? "PUBLISH_STARTED" : "PUBLISH_STOPPED");
      this.#stageUpdate(connection, participant, published ? "Participant Published" : "Participant Unpublished");
    }
    participant.published = published;
    if (published) participant.everPublished = true;
    if (!published) this.#endReplicationsOf(connection, 0);
    const change: LocalServerMessage = {
      type: "participant_published",
      participantId: connection.participantId,
      published,
    };
    this.#toStage(connection.stageArn, change, connection);
    this.options.onChange();
  }

  disconnect(connection: Connection): void {
    this.#drop(connection, { endSession: true });
  }

  #drop(connection: Connection, options: { endSession: boolean }): void {
    const key = connectionKey(connection.stageArn, connection.participantId);
    if (this.#connections.get(key) !== connection) return;
    this.#connections.delete(key);
    const participant = this.#liveParticipant(connection);
    if (participant) {
      if (participant.published) {
        recordEvent(participant, "PUBLISH_STOPPED");
        this.#stageUpdate(connection, participant, "Participant Unpublished");
      }
      recordEvent(participant, "LEFT");
      participant.state = "DISCONNECTED";
      participant.published = false;
    }
    this.#endReplicationsOf(connection);
    this.#toStage(connection.stageArn, { type: "participant_left", participantId: connection.participantId });
    const stage = this.#state.stages.find((s) => s.arn === connection.stageArn);
    if (stage && options.endSession) this.#endSessionIfEmpty(stage);
    this.options.onChange();
  }

  /** Who a participant sees on its stage: everyone connected, replicas of other stages' publishers included. */
  participantsFor(connection: Connection): LocalParticipant[] {
    const stage = this.#state.stages.find((s) => s.arn === connection.stageArn);
    const session = stage && activeSession(stage);
    return (session?.participants ?? [])
      .filter((p) => p.state === "CONNECTED" && p.participantId !== connection.participantId)
      .map(localView);
  }

  /**
   * Relays signalling from one participant to another on its stage. A replica
   * is answered by its source: a viewer of an edge stage negotiates with the
   * publisher in the origin, as IVS would serve it the replica's media.
   */
  relay(from: Connection, to: string, data: unknown): void {
    const target = [...this.#connections.values()].find(
      (c) =>
        c.participantId === to &&
        (c.stageArn === from.stageArn ||
          this.#replicating(c.stageArn, from.stageArn, to) ||
          this.#replicating(from.stageArn, c.stageArn, from.participantId)),
    );
    if (!target) {
      from.send({ type: "error", code: "UNKNOWN_PARTICIPANT", message: `No participant ${to} on this stage.` });
      return;
    }
    target.send({ type: "signal", from: from.participantId, data });
  }

  #replicating(source: string, destination: string, participantId: string): boolean {
    return this.#state.replications.some(
      (r) =>
        r.replicationState === "ACTIVE" &&
        r.sourceStageArn === source &&
        r.destinationStageArn === destination &&
        r.participantId === participantId,
    );
  }

  #toStage(stageArn: string, message: LocalServerMessage, except?: Connection): void {
    for (const connection of this.#connections.values()) {
      if (connection.stageArn === stageArn && connection !== except) connection.send(message);
    }
  }

  // ── replication ──────────────────────────────────────────────────────────

  startReplication(input: Input<"StartParticipantReplication">): Output {
    if (input.sourceStageArn === input.destinationStageArn) {
      throw modelled.validation("Source and destination stages must be different.");
    }
    const source = this.#stage(input.sourceStageArn);
    const destination = this.#stage(input.destinationStageArn);
    const connection = this.#connections.get(connectionKey(source.arn, input.participantId));
    const participant = connection && this.#liveParticipant(connection);
    if (!connection || !participant) {
      throw modelled.notFound(`Participant ${input.participantId} is not connected to stage ${source.arn}.`);
    }
    if (!participant.published) {
      throw modelled.conflict(`Participant ${input.participantId} is not publishing in stage ${source.arn}.`);
    }
    const existing = this.#state.replications.find(
      (r) =>
        r.replicationState === "ACTIVE" &&
        r.sourceStageArn === source.arn &&
        r.destinationStageArn === destination.arn &&
        r.participantId === input.participantId,
    );
    if (existing)
      throw modelled.conflict(`Participant ${input.participantId} is already replicated to ${destination.arn}.`);
    if (publishers(destination) >= this.options.quotas.publishersPerStage) {
      throw modelled.quota(
        `Stage ${destination.arn} has ${this.options.quotas.publishersPerStage} publishers already.`,
      );
    }
    const destinationSession = activeSession(destination) ?? this.#startSession(destination);
    participant.replicationType = "SOURCE";
    const replica: ParticipantRecord = {
      ...participant,
      attributes: { ...participant.attributes, ...input.attributes },
      state: "CONNECTED",
      published: true,
      everPublished: true,
      events: [{ name: "REPLICATION_STARTED", eventTime: new Date().toISOString() }],
      firstJoinTime: new Date().toISOString(),
      replicationType: "REPLICA",
      sourceStageArn: source.arn,
      sourceSessionId: connection.sessionId,
    };
    destinationSession.participants = destinationSession.participants.filter(
      (p) => p.participantId !== replica.participantId,
    );
    destinationSession.participants.push(replica);
    this.#toStage(destination.arn, { type: "participant_joined", participant: localView(replica) });
    this.#state.replications.push({
      sourceStageArn: source.arn,
      destinationStageArn: destination.arn,
      participantId: input.participantId,
      sourceSessionId: connection.sessionId,
      destinationSessionId: destinationSession.sessionId,
      replicationState: "ACTIVE",
      reconnectWindowSeconds: input.reconnectWindowSeconds ?? 0,
      attributes: input.attributes ?? {},
    });
    this.options.onChange();
    return {};
  }

  stopReplication(input: Input<"StopParticipantReplication">): Output {
    this.#stage(input.sourceStageArn);
    this.#stage(input.destinationStageArn);
    const replication = this.#state.replications.find(
      (r) =>
        r.replicationState === "ACTIVE" &&
        r.sourceStageArn === input.sourceStageArn &&
        r.destinationStageArn === input.destinationStageArn &&
        r.participantId === input.participantId,
    );
    if (!replication)
      throw modelled.notFound(`No active replication of ${input.participantId} to ${input.destinationStageArn}.`);
    this.#stopReplication(replication);
    this.options.onChange();
    return {};
  }

  listReplicas(input: Input<"ListParticipantReplicas">): Output {
    const matching = this.#state.replications.filter(
      (r) => r.sourceStageArn === input.sourceStageArn && r.participantId === input.participantId,
    );
    const { items, nextToken } = page(matching, input.nextToken, this.#pageSize(input.maxResults));
    return {
      replicas: items.map((r) => ({
        sourceStageArn: r.sourceStageArn,
        participantId: r.participantId,
        sourceSessionId: r.sourceSessionId,
        destinationStageArn: r.destinationStageArn,
        destinationSessionId: r.destinationSessionId,
        replicationState: r.replicationState,
      })),
      nextToken,
    };
  }

  /** Replicas of a departing publisher stop now, or after their reconnect window. */
  #endReplicationsOf(connection: Connection, forceWindowSeconds?: number): void {
    const active = this.#state.replications.filter(
      (r) =>
        r.replicationState === "ACTIVE" &&
        r.sourceStageArn === connection.stageArn &&
        r.participantId === connection.participantId,
    );
    const window = forceWindowSeconds ?? Math.max(0, ...active.map((r) => r.reconnectWindowSeconds));
    if (active.length === 0) return;
    if (window === 0) {
      for (const r of active) this.#stopReplication(r);
      return;
    }
    const key = connectionKey(connection.stageArn, connection.participantId);
    this.#reconnectTimers.set(
      key,
      setTimeout(() => {
        this.#reconnectTimers.delete(key);
        for (const r of active) if (r.replicationState === "ACTIVE") this.#stopReplication(r);
        this.options.onChange();
      }, window * 1000).unref(),
    );
  }

  #stopReplication(replication: ReplicationRecord): void {
    replication.replicationState = "STOPPED";
    const destination = this.#state.stages.find((s) => s.arn === replication.destinationStageArn);
    const session = destination?.sessions.find((s) => s.sessionId === replication.destinationSessionId);
    const replica = session?.participants.find(
      (p) => p.participantId === replication.participantId && p.replicationType === "REPLICA",
    );
    if (replica) {
      replica.state = "DISCONNECTED";
      replica.published = false;
      this.#toStage(replication.destinationStageArn, {
        type: "participant_left",
        participantId: replica.participantId,
      });
    }
    if (destination) this.#endSessionIfEmpty(destination);
  }

  // ── public keys ──────────────────────────────────────────────────────────

  async importPublicKey(input: Input<"ImportPublicKey">): Promise<Output> {
    try {
      await assertP384PublicKey(input.publicKeyMaterial);
    } catch {
      throw modelled.validation("publicKeyMaterial must be a PEM-encoded EC P-384 (secp384r1) public key.");
    }
    const fingerprint = fingerprintOf(input.publicKeyMaterial);
    if (this.#state.publicKeys.some((k) => k.fingerprint === fingerprint)) {
      throw modelled.conflict("A public key with this material has already been imported.");
    }
    if (this.#state.publicKeys.length >= this.options.quotas.publicKeysPerAccount) {
      throw modelled.quota(`Public key quota of ${this.options.quotas.publicKeysPerAccount} exceeded.`);
    }
    const key: PublicKeyRecord = {
      arn: `arn:aws:ivs:${this.options.region}:${this.options.accountId}:public-key/${randomId(12)}`,
      name: input.name ?? "",
      publicKeyMaterial: input.publicKeyMaterial,
      fingerprint,
      tags: { ...input.tags },
    };
    this.#state.publicKeys.push(key);
    this.options.onChange();
    return { publicKey: publicKeyView(key) };
  }

  deletePublicKey(arn: string): Output {
    const key = this.#publicKey(arn);
    this.#state.publicKeys = this.#state.publicKeys.filter((k) => k !== key);
    this.options.onChange();
    return {};
  }

  listPublicKeys(input: Input<"ListPublicKeys">): Output {
    const { items, nextToken } = page(this.#state.publicKeys, input.nextToken, this.#pageSize(input.maxResults));
    return { publicKeys: items.map((k) => ({ arn: k.arn, name: k.name, tags: { ...k.tags } })), nextToken };
  }

  // ── tags ─────────────────────────────────────────────────────────────────

  tagResource(input: Input<"TagResource">): Output {
    const resource = this.#taggable(input.resourceArn);
    const merged = { ...resource.tags, ...input.tags };
    if (Object.keys(merged).length > 50) throw modelled.validation("A resource can have at most 50 tags.");
    resource.tags = merged;
    this.options.onChange();
    return {};
  }

  untagResource(input: Input<"UntagResource">): Output {
    const resource = this.#taggable(input.resourceArn);
    for (const key of input.tagKeys) delete resource.tags[key];
    this.options.onChange();
    return {};
  }

  // ── lookups ──────────────────────────────────────────────────────────────

  #stage(arn: string): StageRecord {
    const stage = this.#state.stages.find((s) => s.arn === arn);
    if (!stage) throw modelled.notFound(`Stage ${arn} not found.`);
    return stage;
  }

  #session(stage: StageRecord, id: string): SessionRecord {
    const session = stage.sessions.find((s) => s.sessionId === id);
    if (!session) throw modelled.notFound(`Session ${id} not found in stage ${stage.arn}.`);
    return session;
  }

  #publicKey(arn: string): PublicKeyRecord {
    const key = this.#state.publicKeys.find((k) => k.arn === arn);
    if (!key) throw modelled.notFound(`Public key ${arn} not found.`);
    return key;
  }

  #taggable(arn: string): { tags: Record<string, string> } {
    const resource = this.#state.stages.find((s) => s.arn === arn) ?? this.#state.publicKeys.find((k) => k.arn === arn);
    if (!resource) throw modelled.notFound(`Resource ${arn} not found.`);
    return resource;
  }

  /**
   * An "IVS Stage Update" event to the configured EventBridge target, shaped as AWS documents it
   * (RealTimeUserGuide, "Using Amazon EventBridge with IVS Real-Time Streaming"): best effort, as
   * EventBridge is — a failed delivery is logged, not retried.
   */
  #stageUpdate(connection: Connection, participant: ParticipantRecord, eventName: string): void {
    const target = this.options.eventBridge;
    if (!target) return;
    const event = {
      version: "0",
      id: crypto.randomUUID(),
      "detail-type": "IVS Stage Update",
      source: "aws.ivs",
      account: this.options.accountId,
      // EventBridge's time has whole seconds: two events of one second cannot be ordered by it.
      time: new Date().toISOString().replace(/\.\d{3}Z$/, "Z"),
      region: this.options.region,
      resources: [connection.stageArn],
      detail: {
        session_id: connection.sessionId,
        event_name: eventName,
        user_id: participant.userId,
        participant_id: participant.participantId,
      },
    };
    void fetch(target.url, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": target.apiKey },
      body: JSON.stringify(event),
    }).then(
      (response) => {
        if (!response.ok) console.error(`EventBridge delivery to ${target.url}: HTTP ${response.status}`);
      },
      (error: unknown) => console.error(`EventBridge delivery to ${target.url} failed: ${(error as Error).message}`),
    );
  }

  #liveParticipant(connection: Connection): ParticipantRecord | undefined {
    const stage = this.#state.stages.find((s) => s.arn === connection.stageArn);
    const session = stage?.sessions.find((s) => s.sessionId === connection.sessionId);
    return session?.participants.find(
      (p) => p.participantId === connection.participantId && p.replicationType !== "REPLICA",
    );
  }

  #startSession(stage: StageRecord): SessionRecord {
    const session: SessionRecord = { sessionId: sessionId(), startTime: new Date().toISOString(), participants: [] };
    stage.sessions.push(session);
    return session;
  }

  #endSessionIfEmpty(stage: StageRecord): void {
    const session = activeSession(stage);
    if (session && !session.participants.some((p) => p.state === "CONNECTED")) {
      session.endTime = new Date().toISOString();
    }
  }

  #stageView(stage: StageRecord): Output {
    return {
      arn: stage.arn,
      name: stage.name,
      activeSessionId: activeSession(stage)?.sessionId,
      tags: { ...stage.tags },
      endpoints: { events: stage.endpoints.events, whip: stage.endpoints.whip },
    };
  }
}

const connectionKey = (stageArn: string, participantId: string) => `${stageArn}#${participantId}`;
const activeSession = (stage: StageRecord) => stage.sessions.find((s) => s.endTime === undefined);
const publishers = (stage: StageRecord) =>
  activeSession(stage)?.participants.filter((p) => p.state === "CONNECTED" && p.published).length ?? 0;

function localView(p: ParticipantRecord): LocalParticipant {
  return {
    participantId: p.participantId,
    userId: p.userId,
    published: p.published,
    attributes: p.attributes,
    ...(p.replicationType === "REPLICA" && p.sourceStageArn && { replicaOf: p.sourceStageArn }),
  };
}

/** AWS's `published`: ever published in the session (records from before this field: their current state). */
const everPublished = (p: ParticipantRecord): boolean => p.everPublished ?? p.published;

function recordEvent(p: ParticipantRecord, name: string): void {
  (p.events ??= []).push({ name, eventTime: new Date().toISOString() });
  // Bounded: a participant that flaps for hours keeps its last thousand.
  if (p.events.length > 1000) p.events.splice(0, p.events.length - 1000);
}

function participantSummary(p: ParticipantRecord): Output {
  return {
    participantId: p.participantId,
    userId: p.userId,
    state: p.state,
    firstJoinTime: p.firstJoinTime,
    published: everPublished(p),
    recordingState: "DISABLED",
    replicationType: p.replicationType,
    ...(p.replicationType === "REPLICA" && {
      replicationState: p.state === "CONNECTED" ? "ACTIVE" : "STOPPED",
      sourceStageArn: p.sourceStageArn,
      sourceSessionId: p.sourceSessionId,
    }),
  };
}

function sessionView(s: SessionRecord): Output {
  return { sessionId: s.sessionId, startTime: s.startTime, endTime: s.endTime };
}

function publicKeyView(k: PublicKeyRecord): Output {
  return {
    arn: k.arn,
    name: k.name,
    publicKeyMaterial: k.publicKeyMaterial,
    fingerprint: k.fingerprint,
    tags: { ...k.tags },
  };
}

/** Pagination by offset; the token is opaque to clients and fits the model's pattern. */
function page<T>(all: readonly T[], nextToken: string | undefined, maxResults: number | undefined) {
  let start = 0;
  if (nextToken) {
    const decoded = Number(Buffer.from(nextToken, "base64url").toString("utf8"));
    if (!Number.isInteger(decoded) || decoded < 0 || decoded > all.length) {
      throw modelled.validation("The nextToken is not valid.");
    }
    start = decoded;
  }
  const end = start + (maxResults ?? PAGE_DEFAULT);
  return {
    items: all.slice(start, end),
    nextToken: end < all.length ? Buffer.from(String(end)).toString("base64url") : undefined,
  };
}
