import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { api, fetchWith, live, newBroadcastId, ORIGIN } from "./support.ts";

/**
 * An integrator's front end on its own origin: every call it makes with a JSON body or a key is
 * preflighted by the browser, and its answers are only readable with CORS headers.
 */

const SHOP = "https://shop.example.com";

const preflight = (path: string, origin: string, vars?: Record<string, string>) => {
  const init = {
    method: "OPTIONS",
    headers: {
      origin,
      "access-control-request-method": "POST",
      "access-control-request-headers": "content-type,x-api-key",
    },
  };
  return vars ? fetchWith(vars, path, init) : SELF.fetch(`${ORIGIN}${path}`, init);
};

describe("CORS for front ends on other origins", () => {
  it("by default any origin's preflight is answered with the API's methods and headers", async () => {
    const response = await preflight("/api/token/viewer", SHOP);
    expect(response.status).toBe(204);
    expect(response.headers.get("access-control-allow-origin")).toBe("*");
    expect(response.headers.get("access-control-allow-methods")).toContain("POST");
    expect(response.headers.get("access-control-allow-headers")).toBe("content-type,x-api-key");
    expect(Number(response.headers.get("access-control-max-age"))).toBeGreaterThan(0);
    // Per broadcast too.
    const scoped = await preflight(api(newBroadcastId(), "/viewer/heartbeat"), SHOP);
    expect(scoped.status).toBe(204);
  });

  it("answers, errors included, carry the origin, and Retry-After is readable", async () => {
    const b = newBroadcastId();
    await live(b);
    const ok = await SELF.fetch(`${ORIGIN}${api(b, "/token/viewer")}`, {
      method: "POST",
      headers: { origin: SHOP, "content-type": "application/json" },
      body: JSON.stringify({ userId: "shopper" }),
    });
    expect(ok.status).toBe(200);
    expect(ok.headers.get("access-control-allow-origin")).toBe("*");
    expect(ok.headers.get("access-control-expose-headers")).toContain("Retry-After");
    const bad = await SELF.fetch(`${ORIGIN}${api(b, "/token/viewer")}`, {
      method: "POST",
      headers: { origin: SHOP, "content-type": "application/json" },
      body: "{",
    });
    expect(bad.status).toBe(400);
    expect(bad.headers.get("access-control-allow-origin")).toBe("*");
  });

  it("with CORS_ORIGINS set, only those origins and the Worker's own are allowed", async () => {
    const vars = { CORS_ORIGINS: `${SHOP}, https://www.example.com` };
    const allowed = await preflight("/api/token/viewer", SHOP, vars);
    expect(allowed.headers.get("access-control-allow-origin")).toBe(SHOP);
    expect(allowed.headers.get("vary")).toContain("Origin");
    const own = await preflight("/api/token/viewer", ORIGIN, vars);
    expect(own.headers.get("access-control-allow-origin")).toBe(ORIGIN);
    const other = await preflight("/api/token/viewer", "https://evil.example", vars);
    expect(other.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("a socket opened from a page of an origin not allowed is refused; allowed origins and non-browsers connect", async () => {
    const b = newBroadcastId();
    await live(b);
    const vars = { CORS_ORIGINS: SHOP };
    const open = (origin?: string) =>
      fetchWith(vars, api(b, "/ws"), { headers: { upgrade: "websocket", ...(origin && { origin }) } });
    const refused = await open("https://evil.example");
    expect(refused.status).toBe(403);
    expect(await refused.json()).toMatchObject({ success: false, error: { code: "FORBIDDEN" } });
    for (const origin of [SHOP, ORIGIN, undefined]) {
      const accepted = await open(origin);
      expect(accepted.status, String(origin)).toBe(101);
      accepted.webSocket!.accept();
      accepted.webSocket!.close();
    }
  });

  it("a CORS_ORIGINS that is not a list of origins is a configuration error naming it", async () => {
    const response = await fetchWith({ CORS_ORIGINS: "shop.example.com" }, "/api/health");
    expect(response.status).toBe(500);
    expect(JSON.stringify(await response.json())).toContain("CORS_ORIGINS");
  });
});
