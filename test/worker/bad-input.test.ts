import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { ADMIN, ORIGIN, api, asViewer, call, data, joinAs, newBroadcastId } from "./support.ts";

/** Whatever a client sends, the answer is a 4xx in the envelope: never a 500, never a hang. */
describe("bad input", () => {
  const raw = async (path: string, init: RequestInit = {}) => {
    const response = await SELF.fetch(`${ORIGIN}${path}`, init);
    const text = await response.text();
    return { status: response.status, body: JSON.parse(text) as { success: boolean; error?: { code: string } } };
  };
  const json = (body: string, contentType = "application/json") => ({
    method: "POST",
    headers: { "content-type": contentType, "x-api-key": ADMIN },
    body,
  });

  it.each([
    ["a JSON array", "/api/token/viewer", json("[]")],
    ["a JSON string", "/api/token/viewer", json('"viewer"')],
    ["null", "/api/token/viewer", json("null")],
    ["a number for userId", "/api/token/viewer", json('{"userId": 42}')],
    ["an absurdly long userId", "/api/token/viewer", json(JSON.stringify({ userId: "u".repeat(5000) }))],
    ["an empty body", "/api/token/publisher", json("")],
    ["an unknown stage state", "/api/stage/AbCdEf123456", { ...json('{"state":"bogus"}'), method: "PUT" }],
  ])("%s is a 400 VALIDATION_ERROR", async (_name, path, init) => {
    const answer = await raw(path, init);
    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({ success: false, error: { code: "VALIDATION_ERROR" } });
  });

  it("a body that is not declared as JSON is a 415 VALIDATION_ERROR saying what to send", async () => {
    const response = await SELF.fetch(`${ORIGIN}/api/token/viewer`, json('{"userId":"u"}', "text/plain"));
    expect(response.status).toBe(415);
    expect(await response.json()).toMatchObject({
      success: false,
      error: { code: "VALIDATION_ERROR", message: expect.stringContaining("application/json") },
    });
  });

  it.each([
    ["a malformed percent-encoding in a path", "/api/viewer/list/%ZZ"],
    ["a stage that is not an ARN or an id", "/api/stage/not%20a%20stage"],
    ["a missing query", "/api/viewer/duration"],
    ["a query out of range", "/api/events?limit=99999"],
    ["a query that is not a number", "/api/stats/snapshots?hours=soon"],
    ["an upper-case broadcast id", "/api/broadcasts/Main/stats"],
  ])("%s is a 4xx in the envelope", async (_name, path) => {
    const answer = await raw(path, { headers: { "x-api-key": ADMIN } });
    expect(answer.status).toBeGreaterThanOrEqual(400);
    expect(answer.status).toBeLessThan(500);
    expect(answer.body.success).toBe(false);
  });

  it("a plain request to a WebSocket endpoint is a 426 in the envelope", async () => {
    const answer = await raw("/ws");
    expect(answer.status).toBe(426);
    expect(answer.body.success).toBe(false);
  });

  it("a heartbeat for a stage of another broadcast is a 404, and reaches no shard", async () => {
    const a = newBroadcastId();
    const b = newBroadcastId();
    data(await call(api(a, "/token/publisher"), { body: { userId: "host" } }));
    data(await call(api(b, "/token/publisher"), { body: { userId: "host" } }));
    const viewerOfA = await joinAs(a, "u");
    const answer = await call(api(b, "/viewer/heartbeat"), { body: asViewer(viewerOfA), key: null });
    expect(answer.status).toBe(404);
  });
});
