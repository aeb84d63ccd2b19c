import type { Capability } from "../ivs/types.ts";
import { stageIdOf } from "../../protocol/ids.ts";

/**
 * The claims of a self-signed IVS participant token (docs/design.md, "Tokens"), as a pure
 * function of its inputs, so that a test can check them exactly.
 */
export interface SelfSignedClaims {
  exp: number;
  iat: number;
  jti: string;
  resource: string;
  topic: string;
  events_url: string;
  whip_url: string;
  capabilities: { allow_publish: boolean; allow_subscribe: boolean };
  version: "1.0";
  user_id?: string;
  attributes?: Record<string, string>;
}

export interface ClaimsInput {
  stageArn: string;
  endpoints: { events: string; whip: string };
  participantId: string;
  capabilities: readonly Capability[];
  durationMinutes: number;
  userId?: string;
  attributes?: Record<string, string>;
  /** Seconds since the epoch. */
  now: number;
}

export function selfSignedClaims(input: ClaimsInput): SelfSignedClaims {
  return {
    exp: input.now + input.durationMinutes * 60,
    iat: input.now,
    jti: input.participantId,
    resource: input.stageArn,
    topic: stageIdOf(input.stageArn),
    events_url: input.endpoints.events,
    whip_url: input.endpoints.whip,
    capabilities: {
      allow_publish: input.capabilities.includes("PUBLISH"),
      allow_subscribe: input.capabilities.includes("SUBSCRIBE"),
    },
    version: "1.0",
    ...(input.userId !== undefined && { user_id: input.userId }),
    ...(input.attributes !== undefined && { attributes: input.attributes }),
  };
}

const ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/**
 * A participant id for a self-signed token (its `jti`): 12 letters and
 * digits, as IVS makes them. IVS allows `[a-zA-Z0-9-]`; no underscore.
 */
/** A participant id `accept`s: drawn again until it does (a stage's shard is chosen by its id's hash). */
export function newParticipantIdWhere(accept: (id: string) => boolean): string {
  for (let i = 0; i < 10_000; i++) {
    const id = newParticipantId();
    if (accept(id)) return id;
  }
  throw new Error("no participant id found for that shard");
}

export function newParticipantId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  // 256 % 62 leaves a slight bias towards the first 8 letters; irrelevant for an identifier.
  return Array.from(bytes, (b) => ID_ALPHABET[b % ID_ALPHABET.length]).join("");
}
