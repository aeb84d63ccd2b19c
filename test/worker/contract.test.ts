import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import {
  ADMIN,
  ORIGIN,
  api,
  asViewer,
  call,
  closeOf,
  data,
  joinAs,
  newBroadcastId,
  socket,
  waitFor,
} from "./support.ts";

type Token = { token: string; participantId: string; stageArn: string };

describe("the integrator contract, route by route", () => {
  it("answers in the envelope everywhere, at the unprefixed paths too", async () => {
    for (const path of ["/api/stats", "/api/stage/list", "/api/stats/publisher", "/api/broadcaster/stages"]) {
      const answer = await call(path);
      expect(answer.status, path).toBe(200);
      expect(answer.body, path).toMatchObject({ success: true, data: expect.any(Object) });
    }
  });

  it("a missing field is 400 VALIDATION_ERROR with details.missingFields", async () => {
    const answer = await call("/api/token/viewer", { body: {}, key: null });
    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({
      success: false,
      error: { code: "VALIDATION_ERROR", details: { missingFields: ["userId"] } },
    });
    const heartbeat = await call("/api/viewer/heartbeat", { body: { userId: "u" }, key: null });
    expect(heartbeat.body).toMatchObject({
      error: { code: "VALIDATION_ERROR", details: { missingFields: ["stageArn", "participantId", "token"] } },
    });
  });

  it("a malformed field is 400 VALIDATION_ERROR with details.issues", async () => {
    const answer = await call("/api/viewer/heartbeat", {
      body: { userId: "u", stageArn: "not-an-arn", participantId: "p1", token: "t" },
      key: null,
    });
    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({
      error: { code: "VALIDATION_ERROR", details: { issues: [expect.objectContaining({ field: "stageArn" })] } },
    });
  });

  it("malformed JSON is 400, never 500", async () => {
    for (const path of ["/api/token/viewer", "/api/token/publisher", "/api/viewer/heartbeat"]) {
      const answer = await call(path, { raw: "{not json", key: ADMIN });
      expect(answer.status, path).toBe(400);
      expect(answer.body, path).toMatchObject({ success: false, error: { code: "VALIDATION_ERROR" } });
    }
  });

  it("a wrong or missing key is 401 on admin routes", async () => {
    expect((await call("/api/stats", { key: "wrong-key" })).status).toBe(401);
    const missing = await call("/api/token/publisher", { body: { userId: "x" }, key: null });
    expect(missing.status).toBe(401);
    expect(missing.body).toMatchObject({ success: false, error: { code: "UNAUTHORIZED" } });
    expect(JSON.stringify(missing.body)).not.toContain(ADMIN);
  });

  it("an unknown stage is 404", async () => {
    const b = newBroadcastId();
    data(await call(api(b, "/token/publisher"), { body: { userId: "host" } }));
    const unknown = "arn:aws:ivs:us-east-1:123456789012:stage/unknownStage";
    expect((await call(api(b, `/stage/${encodeURIComponent(unknown)}`))).status).toBe(404);
    const viewer = await joinAs(b, "u");
    expect(
      (await call(api(b, "/viewer/heartbeat"), { body: { ...asViewer(viewer), stageArn: unknown }, key: null })).status,
    ).toBe(404);
    expect(
      (await call(api(b, "/token/viewer"), { body: { userId: "u", stageArn: unknown }, key: null })).body,
    ).toMatchObject({ error: { code: "NOT_FOUND" } });
  });

  it("a stage is addressed by its ARN or its id", async () => {
    const b = newBroadcastId();
    const grant = data(await call<Token>(api(b, "/token/publisher"), { body: { userId: "host" } }));
    const id = grant.stageArn.split("/").pop()!;
    expect(data(await call<{ stageArn: string }>(api(b, `/stage/${id}`))).stageArn).toBe(grant.stageArn);
    expect(data(await call<{ stageArn: string }>(api(b, "/stage/master/info"))).stageArn).toBe(grant.stageArn);
  });

  it("every stage full at the maximum is 503 STAGE_FULL with Retry-After", async () => {
    const b = newBroadcastId();
    data(await call(api(b, "/token/publisher"), { body: { userId: "host" } }));
    // Capacity 3 and at most 4 stages: 12 seats.
    let full;
    for (let i = 0; i < 20 && !full; i++) {
      const answer = await call(api(b, "/token/viewer"), { body: { userId: `v${i}` }, key: null });
      if (answer.status !== 200) full = answer;
    }
    expect(full?.status).toBe(503);
    expect(full?.headers.get("Retry-After")).toMatch(/^\d+$/);
    expect(full?.body).toMatchObject({ success: false, error: { code: "STAGE_FULL" } });
    expect(data(await call<{ total: number }>(api(b, "/stage/list"))).total).toBe(4);
    // Shards report at most once a second: the totals follow shortly.
    await waitFor(async () =>
      expect(data(await call<{ totalViewers: number }>(api(b, "/stats"))).totalViewers).toBe(12),
    );
  });

  it("a bad broadcast id is 400", async () => {
    expect((await call("/api/broadcasts/Not_Valid/stats")).status).toBe(400);
  });

  it("serves an OpenAPI document generated from the route schemas", async () => {
    const response = await SELF.fetch(`${ORIGIN}/api/openapi.json`);
    const doc = (await response.json()) as { openapi: string; paths: Record<string, Record<string, unknown>> };
    expect(doc.openapi).toBe("3.1.0");
    for (const path of [
      "/api/token/viewer",
      "/api/token/publisher",
      "/api/viewer/heartbeat",
      "/api/stats",
      "/api/stage/{stageArn}",
      "/api/broadcaster/stages",
    ]) {
      expect(doc.paths[path], path).toBeDefined();
    }
    expect(Object.keys(doc.paths).length).toBeGreaterThanOrEqual(28);
  });
});

describe("access for viewers", () => {
  it("viewer routes are open by default and need no key", async () => {
    const b = newBroadcastId();
    data(await call(api(b, "/token/publisher"), { body: { userId: "host" } }));
    expect((await call(api(b, "/token/viewer"), { body: { userId: "anon" }, key: null })).status).toBe(200);
  });
});

describe("WebSockets", () => {
  it("the stats socket pushes stats_update after a join and after a leave", async () => {
    const b = newBroadcastId();
    data(await call(api(b, "/token/publisher"), { body: { userId: "host" } }));
    const stats = await socket(api(b, "/ws"));
    stats.ws.send(JSON.stringify({ action: "subscribe", channel: "stats" }));
    await stats.next("subscribed");
    expect((await stats.next("stats_update")).data).toMatchObject({ totalViewers: 0 });
    const viewer = await joinAs(b, "one");
    await waitFor(() =>
      expect(stats.messages.some((m) => m.type === "stats_update" && m.data?.totalViewers === 1)).toBe(true),
    );
    await call(api(b, "/viewer/leave"), { body: asViewer(viewer), key: null });
    await waitFor(() =>
      expect(stats.messages.at(-1)).toMatchObject({ type: "stats_update", data: { totalViewers: 0 } }),
    );
    stats.close();
  });

  it("the broadcaster socket needs the admin key or a ticket in its first message, never a secret in the URL", async () => {
    const b = newBroadcastId();
    const { ticket } = data(await call<{ ticket: string }>(api(b, "/broadcaster/ticket"), { body: {} }));
    for (const query of [`apiKey=${ADMIN}`, `ticket=${encodeURIComponent(ticket)}`]) {
      const inUrl = await SELF.fetch(`${ORIGIN}${api(b, `/ws?type=broadcaster&${query}`)}`, {
        headers: { Upgrade: "websocket" },
      });
      expect(inUrl.status, query).toBe(400);
      expect(await inUrl.text()).not.toContain(ADMIN);
    }
    // Without a key the socket opens, but it is nobody's until a ticket is redeemed in its first message.
    const anonymous = await socket(api(b, "/ws?type=broadcaster"));
    anonymous.ws.send(JSON.stringify({ type: "end" }));
    expect((await closeOf(anonymous)).code).toBe(4401);
    const viaTicket = await socket(api(b, "/ws?type=broadcaster"));
    viaTicket.ws.send(JSON.stringify({ type: "auth", ticket }));
    await viaTicket.next("ready");
    viaTicket.close();
    // A ticket is for one broadcast.
    const other = newBroadcastId();
    data(await call(api(other, "/broadcaster/ticket"), { body: {} }));
    const elsewhere = await socket(api(other, "/ws?type=broadcaster"));
    elsewhere.ws.send(JSON.stringify({ type: "auth", ticket }));
    expect((await closeOf(elsewhere)).code).toBe(4401);
  });

  it("a client cannot pass itself off as the broadcaster through the channel header", async () => {
    const b = newBroadcastId();
    data(await call(api(b, "/token/publisher"), { body: { userId: "host" } }));
    const sneaky = await socket(api(b, "/ws"), { "x-fanout-channel": "broadcaster", "x-fanout-access": "admin" });
    sneaky.ws.send(JSON.stringify({ type: "end" }));
    await sneaky.next("error");
    sneaky.close();
    expect(data(await call<{ status: string }>(api(b, "/stats"))).status).toBe("live");
  });

  it("the broadcaster socket receives stage_created and stage_deleted, and publish_state reaches the stats", async () => {
    const b = newBroadcastId();
    const grant = data(await call<Token>(api(b, "/token/publisher"), { body: { userId: "host" } }));
    const broadcaster = await socket(api(b, "/ws?type=broadcaster"), { "x-api-key": ADMIN });
    const created = data(await call<{ stageArn: string }>(api(b, "/stage"), { body: {} }));
    expect((await broadcaster.next("stage_created")).data).toMatchObject({
      stageArn: created.stageArn,
      timestamp: expect.any(String),
    });
    await call(api(b, `/stage/${encodeURIComponent(created.stageArn)}`), { method: "DELETE" });
    expect((await broadcaster.next("stage_deleted")).data).toMatchObject({ stageArn: created.stageArn });

    broadcaster.ws.send(
      JSON.stringify({ type: "publish_state", data: { stageArn: grant.stageArn, state: "publishing" } }),
    );
    await waitFor(async () =>
      expect(data(await call<{ isPublisherLive: boolean }>(api(b, "/stats"))).isPublisherLive).toBe(true),
    );
    broadcaster.ws.send("not json");
    await broadcaster.next("error");
    broadcaster.close();
  });
});
