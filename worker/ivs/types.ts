/**
 * The IVS Real-Time shapes Fanout uses (ivs-realtime 2020-07-14), as they
 * travel on the wire: timestamps are ISO 8601 strings.
 */

export type Tags = Record<string, string>;
export type Capability = "PUBLISH" | "SUBSCRIBE";

export interface StageEndpoints {
  events?: string;
  whip?: string;
  rtmp?: string;
  rtmps?: string;
}

export interface Stage {
  arn: string;
  name?: string;
  activeSessionId?: string;
  tags?: Tags;
  endpoints?: StageEndpoints;
}

export interface StageSummary {
  arn: string;
  name?: string;
  activeSessionId?: string;
  tags?: Tags;
}

export interface ParticipantToken {
  participantId?: string;
  token?: string;
  userId?: string;
  attributes?: Record<string, string>;
  duration?: number;
  capabilities?: Capability[];
  expirationTime?: string;
}

export interface ParticipantSummary {
  participantId?: string;
  userId?: string;
  state?: "CONNECTED" | "DISCONNECTED";
  firstJoinTime?: string;
  published?: boolean;
  replicationType?: "SOURCE" | "REPLICA" | "NONE";
  replicationState?: "ACTIVE" | "STOPPED";
  sourceStageArn?: string;
  sourceSessionId?: string;
}

export interface StageSessionSummary {
  sessionId?: string;
  startTime?: string;
  endTime?: string;
}

export interface ParticipantReplica {
  sourceStageArn: string;
  participantId: string;
  sourceSessionId: string;
  destinationStageArn: string;
  destinationSessionId: string;
  replicationState: "ACTIVE" | "STOPPED";
}

export interface PublicKey {
  arn?: string;
  name?: string;
  publicKeyMaterial?: string;
  fingerprint?: string;
  tags?: Tags;
}

export interface PublicKeySummary {
  arn?: string;
  name?: string;
  tags?: Tags;
}

export interface Page {
  nextToken?: string;
  maxResults?: number;
}

/** One event of a participant in a stage session (ListParticipantEvents). */
export interface ParticipantEvent {
  name: string;
  participantId?: string;
  eventTime?: string;
  errorCode?: string;
}
