import { existsSync, readFileSync, writeFileSync, mkdirSync, renameSync } from "node:fs";
import { dirname } from "node:path";

/**
 * Everything the emulator knows, as plain data so that it can be written to
 * disk and read back: `npm run dev` keeps its stages and imported keys across
 * restarts, as the Durable Objects keep theirs. Live connections are not state:
 * after a restart every participant is disconnected and every session ended.
 */

export type Capability = "PUBLISH" | "SUBSCRIBE";

export interface ParticipantRecord {
  participantId: string;
  userId: string;
  attributes: Record<string, string>;
  capabilities: Capability[];
  state: "CONNECTED" | "DISCONNECTED";
  firstJoinTime: string;
  /** Publishing now (the emulator's own state: quotas, replication, media). */
  published: boolean;
  /** Whether it ever published in this session: what AWS's `published` and `filterByPublished` mean. */
  everPublished?: boolean;
  /** What ListParticipantEvents answers: JOINED, LEFT, PUBLISH_STARTED, PUBLISH_STOPPED, in order. */
  events?: { name: string; eventTime: string }[];
  replicationType: "SOURCE" | "REPLICA" | "NONE";
  sourceStageArn?: string;
  sourceSessionId?: string;
}

export interface SessionRecord {
  sessionId: string;
  startTime: string;
  endTime?: string;
  participants: ParticipantRecord[];
}

export interface StageRecord {
  arn: string;
  name: string;
  tags: Record<string, string>;
  createdAt: string;
  endpoints: { events: string; whip: string; rtmp: string; rtmps: string };
  sessions: SessionRecord[];
  /** Participant ids removed by DisconnectParticipant: revoked for good. */
  revoked: string[];
}

export interface PublicKeyRecord {
  arn: string;
  name: string;
  publicKeyMaterial: string;
  fingerprint: string;
  tags: Record<string, string>;
}

export interface ReplicationRecord {
  sourceStageArn: string;
  destinationStageArn: string;
  participantId: string;
  sourceSessionId: string;
  destinationSessionId: string;
  replicationState: "ACTIVE" | "STOPPED";
  reconnectWindowSeconds: number;
  attributes: Record<string, string>;
}

export interface State {
  stages: StageRecord[];
  publicKeys: PublicKeyRecord[];
  replications: ReplicationRecord[];
  /** The emulator's own signing key for tokens it issues (JWK of a P-384 key pair). */
  signingKey?: JsonWebKey;
}

export const emptyState = (): State => ({ stages: [], publicKeys: [], replications: [] });

export function loadState(path: string): State {
  // No file yet is a fresh start; an unreadable or corrupt one is an error worth stopping for.
  if (!existsSync(path)) return emptyState();
  const state = { ...emptyState(), ...(JSON.parse(readFileSync(path, "utf8")) as Partial<State>) };
  // Nobody is connected to a freshly started emulator.
  const now = new Date().toISOString();
  for (const stage of state.stages) {
    for (const session of stage.sessions) {
      session.endTime ??= now;
      for (const p of session.participants) p.state = "DISCONNECTED";
    }
  }
  for (const r of state.replications) r.replicationState = "STOPPED";
  return state;
}

/** Writes atomically (temp file, then rename), so a crash never leaves half a file. */
export function saveState(path: string, state: State): void {
  mkdirSync(dirname(path), { recursive: true });
  const temp = `${path}.tmp`;
  writeFileSync(temp, JSON.stringify(state));
  renameSync(temp, path);
}
