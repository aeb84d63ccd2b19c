import { SignJWT, importPKCS8 } from "jose";
import { LRUCache } from "lru-cache";
import type { IvsClient } from "../ivs/client.ts";
import type { Capability } from "../ivs/types.ts";
import { newParticipantId, selfSignedClaims } from "./claims.ts";
import { toPkcs8Pem } from "./private-key.ts";
import { ConfigError } from "../config.ts";

/**
 * One way to get a participant token, whichever way it is made (docs/design.md, "Tokens"):
 * self-signed ES384 in the Worker when a key is configured (no AWS call per
 * join, no 50 TPS limit, renewable in place with `exchangeToken`), or
 * CreateParticipantToken otherwise.
 */

export interface ParticipantTokenRequest {
  stage: { arn: string; endpoints: { events: string; whip: string } };
  capabilities: readonly Capability[];
  durationMinutes: number;
  userId?: string;
  attributes?: Record<string, string>;
  /**
   * Renewal: keep this participant id, so the client can swap the token in
   * place (`exchangeToken`). Honoured for self-signed tokens only;
   * CreateParticipantToken always names a new participant.
   */
  participantId?: string;
}

export interface IssuedToken {
  token: string;
  participantId: string;
  stageArn: string;
  capabilities: Capability[];
  /** ISO 8601. */
  expiresAt: string;
}

export type TokenIssuer = { kind: "self-signed"; privateKey: string; keyArn: string } | { kind: "api"; ivs: IvsClient };

export async function issueParticipantToken(
  issuer: TokenIssuer,
  request: ParticipantTokenRequest,
): Promise<IssuedToken> {
  return issuer.kind === "self-signed" ? selfSign(issuer, request) : viaApi(issuer.ivs, request);
}

async function selfSign(
  issuer: { privateKey: string; keyArn: string },
  request: ParticipantTokenRequest,
): Promise<IssuedToken> {
  const claims = selfSignedClaims({
    stageArn: request.stage.arn,
    endpoints: request.stage.endpoints,
    participantId: request.participantId ?? newParticipantId(),
    capabilities: request.capabilities,
    durationMinutes: request.durationMinutes,
    userId: request.userId,
    attributes: request.attributes,
    now: Math.floor(Date.now() / 1000),
  });
  const token = await new SignJWT({ ...claims })
    .setProtectedHeader({ alg: "ES384", typ: "JWT", kid: issuer.keyArn })
    .sign(await signingKey(issuer.privateKey));
  return {
    token,
    participantId: claims.jti,
    stageArn: claims.resource,
    capabilities: [...request.capabilities],
    expiresAt: new Date(claims.exp * 1000).toISOString(),
  };
}

async function viaApi(ivs: IvsClient, request: ParticipantTokenRequest): Promise<IssuedToken> {
  const { participantToken } = await ivs.createParticipantToken({
    stageArn: request.stage.arn,
    duration: request.durationMinutes,
    userId: request.userId,
    attributes: request.attributes,
    capabilities: [...request.capabilities],
  });
  if (!participantToken.token || !participantToken.participantId) {
    throw new Error("CreateParticipantToken answered without a token");
  }
  return {
    token: participantToken.token,
    participantId: participantToken.participantId,
    stageArn: request.stage.arn,
    capabilities: participantToken.capabilities ?? [...request.capabilities],
    expiresAt: participantToken.expirationTime ?? new Date(Date.now() + request.durationMinutes * 60_000).toISOString(),
  };
}

// Importing a PKCS#8 key costs more than signing with it: keep one per isolate (bounded: a key
// rotation leaves the old one to age out).
const keys = new LRUCache<string, Promise<CryptoKey>>({ max: 4 });

export function signingKey(privateKey: string): Promise<CryptoKey> {
  let key = keys.get(privateKey);
  if (!key) {
    key = (importPKCS8(toPem(privateKey), "ES384", { extractable: true }) as Promise<CryptoKey>).catch(() => {
      // Named, never quoted: the value is a secret.
      throw new ConfigError(
        "TOKEN_PRIVATE_KEY",
        "is not a P-384 private key (a PKCS#8 or SEC1 PEM, or its base64 body; `npm run keys` makes one)",
      );
    });
    keys.set(privateKey, key);
    key.catch(() => keys.delete(privateKey));
  }
  return key;
}

/**
 * Secrets hold the key as a PEM or as its base64 body on one line (what
 * `npm run keys` writes, since `.dev.vars` and `wrangler secret put` are
 * line-oriented); literal `\n` escapes are tolerated too; PKCS#8 or SEC1 (private-key.ts).
 */
export const toPem = toPkcs8Pem;

/** Self-signed when a key is configured (docs/design.md, "Tokens"), CreateParticipantToken otherwise. */
export function tokenIssuerFor(
  config: { tokenKey?: { privateKey: string; keyArn: string } },
  ivs: IvsClient,
): TokenIssuer {
  return config.tokenKey ? { kind: "self-signed", ...config.tokenKey } : { kind: "api", ivs };
}
