import { createMiddleware } from "hono/factory";
import { ApiError } from "../errors.ts";
import type { AppEnv } from "./context.ts";

/**
 * Keys arrive in `x-api-key` (README.md, "HTTP API") and are compared in constant time:
 * both sides are hashed first so that neither length nor content leaks
 * through timing. Keys are never logged.
 */
export async function keyMatches(given: string | undefined, expected: string | undefined): Promise<boolean> {
  if (!given || !expected) return false;
  const encoder = new TextEncoder();
  const [a, b] = await Promise.all([
    crypto.subtle.digest("SHA-256", encoder.encode(given)),
    crypto.subtle.digest("SHA-256", encoder.encode(expected)),
  ]);
  return crypto.subtle.timingSafeEqual(a, b);
}

const unauthorized = () => new ApiError("UNAUTHORIZED", 401, "A valid key is required in the x-api-key header.");

export const requireAdmin = createMiddleware<AppEnv>(async (c, next) => {
  if (!(await keyMatches(c.req.header("x-api-key"), c.var.config.adminKey))) throw unauthorized();
  await next();
});

/** Open by default, so a share link works without a secret in the browser; `VIEWER_ACCESS=key` closes it. */
export const requireViewerAccess = createMiddleware<AppEnv>(async (c, next) => {
  const { viewerAccess, viewerKey, adminKey } = c.var.config;
  if (viewerAccess === "key") {
    const given = c.req.header("x-api-key");
    if (!(await keyMatches(given, viewerKey)) && !(await keyMatches(given, adminKey))) throw unauthorized();
  }
  await next();
});

// ── broadcaster tickets: the studio's way onto the broadcaster socket without the key in a URL ──

const TICKET_SECONDS = 60;

async function ticketKey(adminKey: string): Promise<CryptoKey> {
  const material = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(`fanout-ticket:${adminKey}`));
  return crypto.subtle.importKey("raw", material, { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
}

const b64url = (bytes: ArrayBuffer | Uint8Array) =>
  btoa(String.fromCharCode(...new Uint8Array(bytes)))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
const fromB64url = (text: string) =>
  Uint8Array.from(atob(text.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));

export async function issueTicket(
  adminKey: string,
  broadcastId: string,
  now = Date.now(),
): Promise<{ ticket: string; expiresIn: number }> {
  const payload = new TextEncoder().encode(
    JSON.stringify({ b: broadcastId, exp: Math.floor(now / 1000) + TICKET_SECONDS }),
  );
  const signature = await crypto.subtle.sign("HMAC", await ticketKey(adminKey), payload);
  return { ticket: `${b64url(payload)}.${b64url(signature)}`, expiresIn: TICKET_SECONDS };
}

export async function ticketValid(
  adminKey: string,
  ticket: string | undefined,
  broadcastId: string,
  now = Date.now(),
): Promise<boolean> {
  const [payloadPart, signaturePart] = ticket?.split(".") ?? [];
  if (!payloadPart || !signaturePart) return false;
  try {
    const payload = fromB64url(payloadPart);
    if (!(await crypto.subtle.verify("HMAC", await ticketKey(adminKey), fromB64url(signaturePart), payload)))
      return false;
    const { b, exp } = JSON.parse(new TextDecoder().decode(payload)) as { b: string; exp: number };
    return b === broadcastId && exp * 1000 > now;
  } catch (error) {
    // Malformed base64 or JSON is simply not a valid ticket.
    if (error instanceof SyntaxError || error instanceof DOMException) return false;
    throw error;
  }
}
