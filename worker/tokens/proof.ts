/**
 * What a participant proves itself with (docs/design.md, "Tokens"): the token Fanout issued to
 * it. Participant ids are not secrets (IVS shows every participant's id to the others on its
 * stage), so a call that acts as a participant must carry its token; the shard keeps only a
 * digest of each token it admitted or renewed, never the token.
 */
export async function tokenDigest(token: string): Promise<string> {
  return base64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(token)));
}

export const base64url = (bytes: ArrayBuffer | Uint8Array) =>
  btoa(String.fromCharCode(...new Uint8Array(bytes)))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");

/** A token as the shard records it: its digest and when it stops proving anything. */
export interface Grant {
  digest: string;
  /** Milliseconds since the epoch. */
  expiresAt: number;
}

export async function grantOf(token: { token: string; expiresAt: string }): Promise<Grant> {
  return { digest: await tokenDigest(token.token), expiresAt: Date.parse(token.expiresAt) };
}
