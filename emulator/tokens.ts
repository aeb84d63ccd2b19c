import { createHash } from "node:crypto";
import {
  SignJWT,
  decodeProtectedHeader,
  exportJWK,
  generateKeyPair,
  importJWK,
  importSPKI,
  jwtVerify,
  errors as joseErrors,
} from "jose";
import type { Capability, PublicKeyRecord } from "./state.ts";
import { stageIdOf } from "../protocol/ids.ts";

/**
 * Participant tokens as IVS issues and checks them: ES384 JWTs whose claims
 * name the stage (`resource`, `topic`), the participant (`jti`) and what it may
 * do (`capabilities`). Tokens from CreateParticipantToken are signed with the
 * emulator's own key; self-signed ones carry the ARN of an imported public key
 * as `kid` and verify against it.
 */

export const EMULATOR_KEY_ID = "ivs-emulator";

export interface TokenClaims {
  jti: string;
  resource: string;
  topic: string;
  events_url: string;
  whip_url: string;
  capabilities: { allow_publish?: boolean; allow_subscribe?: boolean };
  user_id?: string;
  attributes?: Record<string, string>;
  version?: string;
  exp: number;
  iat?: number;
}

export class TokenRejected extends Error {
  readonly reason:
    "expired" | "bad_signature" | "unknown_key" | "wrong_stage" | "wrong_participant" | "malformed" | "revoked";
  constructor(reason: TokenRejected["reason"], message: string) {
    super(message);
    this.reason = reason;
  }
}

export interface SigningKey {
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  jwk: JsonWebKey;
}

export async function loadOrCreateSigningKey(saved: JsonWebKey | undefined): Promise<SigningKey> {
  if (saved) {
    const privateKey = (await importJWK(saved, "ES384")) as CryptoKey;
    const { d: _d, ...publicJwk } = saved;
    const publicKey = (await importJWK(publicJwk, "ES384")) as CryptoKey;
    return { privateKey, publicKey, jwk: saved };
  }
  const pair = await generateKeyPair("ES384", { extractable: true });
  return { ...pair, jwk: (await exportJWK(pair.privateKey)) as JsonWebKey };
}

export async function issueToken(
  key: SigningKey,
  claims: Omit<TokenClaims, "exp" | "iat">,
  durationMinutes: number,
): Promise<{ token: string; expirationTime: Date }> {
  const now = Math.floor(Date.now() / 1000);
  const exp = now + durationMinutes * 60;
  const token = await new SignJWT({ ...claims })
    .setProtectedHeader({ alg: "ES384", typ: "JWT", kid: EMULATOR_KEY_ID })
    .setIssuedAt(now)
    .setExpirationTime(exp)
    .sign(key.privateKey);
  return { token, expirationTime: new Date(exp * 1000) };
}

export function fingerprintOf(publicKeyMaterial: string): string {
  const der = Buffer.from(
    publicKeyMaterial.replace(/-----(BEGIN|END) PUBLIC KEY-----/g, "").replace(/\s+/g, ""),
    "base64",
  );
  return createHash("sha256")
    .update(der)
    .digest("hex")
    .replace(/(..)(?!$)/g, "$1:");
}

/** Checks that a PEM is an EC P-384 public key, the only kind IVS accepts. */
export async function assertP384PublicKey(publicKeyMaterial: string): Promise<void> {
  await importSPKI(publicKeyMaterial.trim(), "ES384");
}

export async function verifyToken(
  token: string,
  stageArn: string | undefined,
  keys: { emulator: SigningKey; imported: (arn: string) => PublicKeyRecord | undefined },
): Promise<TokenClaims> {
  let kid: string | undefined;
  try {
    const header = decodeProtectedHeader(token);
    if (header.alg !== "ES384") throw new TokenRejected("malformed", "token must be signed with ES384");
    kid = header.kid;
  } catch (error) {
    if (error instanceof TokenRejected) throw error;
    throw new TokenRejected("malformed", "token is not a JWT");
  }
  let key: CryptoKey;
  if (kid === EMULATOR_KEY_ID) {
    key = keys.emulator.publicKey;
  } else {
    const record = kid ? keys.imported(kid) : undefined;
    if (!record) throw new TokenRejected("unknown_key", `no imported public key ${kid ?? "(no kid)"}`);
    key = (await importSPKI(record.publicKeyMaterial.trim(), "ES384")) as CryptoKey;
  }
  let claims: TokenClaims;
  try {
    const verified = await jwtVerify(token, key, { algorithms: ["ES384"], requiredClaims: ["exp", "jti", "resource"] });
    claims = verified.payload as unknown as TokenClaims;
  } catch (error) {
    if (error instanceof joseErrors.JWTExpired) throw new TokenRejected("expired", "token has expired");
    if (error instanceof joseErrors.JWSSignatureVerificationFailed) {
      throw new TokenRejected("bad_signature", "token signature does not verify");
    }
    throw new TokenRejected("malformed", `token is invalid: ${(error as Error).message}`);
  }
  if (stageArn !== undefined && claims.resource !== stageArn) {
    throw new TokenRejected("wrong_stage", "token is for another stage");
  }
  if (claims.topic !== undefined && claims.topic !== stageIdOf(claims.resource)) {
    throw new TokenRejected("wrong_stage", "token topic does not match its resource");
  }
  return claims;
}

export function capabilitiesOf(claims: TokenClaims): Capability[] {
  const capabilities: Capability[] = [];
  if (claims.capabilities?.allow_publish) capabilities.push("PUBLISH");
  if (claims.capabilities?.allow_subscribe) capabilities.push("SUBSCRIBE");
  return capabilities;
}
