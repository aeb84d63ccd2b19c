import { describe, expect, it } from "vitest";
import { ADMIN, api, call, data, fetchWith, newBroadcastId } from "./support.ts";

describe("rate limiting of the open routes", () => {
  it("answers 429 RATE_LIMITED with Retry-After once one address asks for too many viewer tokens", async () => {
    const b = newBroadcastId();
    data(await call(api(b, "/token/publisher"), { body: { userId: "host" } }));
    const statuses: number[] = [];
    let limited: Response | undefined;
    // Up to two windows' worth: the limiter counts in fixed 10 s windows, and a run may straddle two.
    for (let i = 0; i < 130 && !limited; i++) {
      const response = await fetchWith({ RATE_LIMITING: "on" }, api(b, "/token/viewer"), {
        method: "POST",
        headers: { "content-type": "application/json", "cf-connecting-ip": "203.0.113.7" },
        // Asking for a stage that is not part of the broadcast: refused at once (404) after the limiter
        // counted it, so the test never waits on the join path (a join finding every seat taken waits
        // up to 8 s for a new stage, and slow requests would let the limiter's window roll over).
        body: JSON.stringify({ userId: `v${i}`, stageArn: "arn:aws:ivs:us-east-1:123456789012:stage/notThisOne" }),
      });
      statuses.push(response.status);
      if (response.status === 429) limited = response;
    }
    // Let through (and refused for the stage) up to the limit, then limited.
    expect(statuses.filter((s) => s !== 429).length).toBeGreaterThanOrEqual(50);
    expect(limited?.headers.get("Retry-After")).toBe("10");
    expect(await limited?.json()).toMatchObject({ success: false, error: { code: "RATE_LIMITED" } });
  });
});

describe("VIEWER_ACCESS=key", () => {
  const vars = { VIEWER_ACCESS: "key", VIEWER_KEY: "viewer-key-0123456789" };

  it("viewer routes need the viewer key or the admin key", async () => {
    const b = newBroadcastId();
    data(await call(api(b, "/token/publisher"), { body: { userId: "host" } }));
    const ask = (key?: string) =>
      fetchWith(vars, api(b, "/token/viewer"), {
        method: "POST",
        headers: { "content-type": "application/json", ...(key && { "x-api-key": key }) },
        body: JSON.stringify({ userId: "v" }),
      });
    expect((await ask()).status).toBe(401);
    expect((await ask("wrong")).status).toBe(401);
    expect((await ask(vars.VIEWER_KEY)).status).toBe(200);
    expect((await ask(ADMIN)).status).toBe(200);
  });

  it("the viewer key opens no admin route", async () => {
    const response = await fetchWith(vars, "/api/stats", { headers: { "x-api-key": vars.VIEWER_KEY } });
    expect(response.status).toBe(401);
  });
});
