import { env, listDurableObjectIds, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { Tickets } from "../../worker/broadcast/tickets.ts";
import {
  ADMIN,
  ORIGIN,
  accept,
  api,
  asViewer,
  call,
  closeOf,
  data,
  fetchWith,
  joinAs,
  newBroadcastId,
  socket,
  viewerSocket,
  waitFor,
  type Socket,
} from "./support.ts";

/**
 * Every attack in SECURITY.md's threat model, performed against the Worker in workerd with
 * the emulator behind it, and the legitimate path beside it. An anonymous person with a share
 * link can try each of these: viewer routes are open by default.
 */

type Grant = { token: string; participantId: string; stageArn: string };
type Stats = { totalViewers: number };

async function liveBroadcast() {
  const b = newBroadcastId();
  const publisher = data(await call<Grant>(api(b, "/token/publisher"), { body: { userId: "host" } }));
  return { b, publisher };
}

const list = async (b: string, stageArn: string) =>
  data(
    await call<{ viewers: { participantId: string; userId: string }[]; total: number }>(
      api(b, `/viewer/list/${encodeURIComponent(stageArn)}`),
    ),
  );

describe("taking a participant's identity", () => {
  it("the open stats channel carries no participant id, user id, stage or replication state", async () => {
    const { b, publisher } = await liveBroadcast();
    const viewer = await joinAs(b, "viewer-ann-q7");
    const stats = await socket(api(b, "/ws"));
    stats.ws.send(JSON.stringify({ action: "subscribe", channel: "stats" }));
    await waitFor(() =>
      expect(stats.messages.some((m) => m.type === "stats_update" && m.data?.totalViewers === 1)).toBe(true),
    );
    const update = stats.messages.findLast((m) => m.type === "stats_update")!;
    expect(Object.keys(update.data!).sort()).toEqual(
      ["activeStages", "broadcastId", "endedAt", "isPublisherLive", "startedAt", "status", "totalViewers"].sort(),
    );
    const everything = JSON.stringify(stats.messages);
    for (const secret of [publisher.participantId, viewer.participantId, "host", "viewer-ann-q7", viewer.stageArn])
      expect(everything).not.toContain(secret);
    stats.close();
  });

  it("nobody can rejoin or renew as the publisher's participant, with any token but its own", async () => {
    const { b, publisher } = await liveBroadcast();
    const viewer = await joinAs(b, "mallory");
    const asPublisher = { ...asViewer(viewer), participantId: publisher.participantId, stageArn: publisher.stageArn };
    for (const path of ["/viewer/rejoin", "/token/viewer/renew", "/viewer/heartbeat", "/viewer/leave"]) {
      const answer = await call(api(b, path), { body: asPublisher, key: null });
      expect(answer.status, path).toBe(403);
      expect(answer.body, path).toMatchObject({ error: { code: "FORBIDDEN" } });
    }
    // No seat was taken in the publisher's name.
    expect((await list(b, publisher.stageArn)).viewers.map((v) => v.participantId)).not.toContain(
      publisher.participantId,
    );
  });

  it("a viewer who really dropped rejoins as itself, with its own token", async () => {
    const { b } = await liveBroadcast();
    const viewer = await joinAs(b, "blip");
    await runInDurableObject(env.STAGE_SHARD.getByName(viewer.stageArn), (_o, state) => {
      state.storage.sql.exec("UPDATE viewers SET last_seen = ?", Date.now() - 120_000);
    });
    await runDurableObjectAlarm(env.STAGE_SHARD.getByName(viewer.stageArn));
    expect((await list(b, viewer.stageArn)).total).toBe(0);
    const back = await call(api(b, "/viewer/rejoin"), { body: asViewer(viewer), key: null });
    expect(data(back)).toMatchObject({ participantId: viewer.participantId });
    expect((await list(b, viewer.stageArn)).viewers.map((v) => v.participantId)).toEqual([viewer.participantId]);
  });
});

describe("squatting seats", () => {
  it("rejoin with invented participant ids takes no seat", async () => {
    const { b, publisher } = await liveBroadcast();
    const real = await joinAs(b, "real");
    for (let i = 0; i < 10; i++) {
      const answer = await call(api(b, "/viewer/rejoin"), {
        body: { ...asViewer(real), participantId: `squat-${i}` },
        key: null,
      });
      expect(answer.status).toBe(403);
    }
    expect((await list(b, publisher.stageArn)).total).toBe(1);
    await waitFor(async () => expect(data(await call<Stats>(api(b, "/stats"))).totalViewers).toBe(1));
  });

  it("a viewer socket that proves nothing holds no seat and is closed", async () => {
    const { b } = await liveBroadcast();
    const viewer = await joinAs(b, "ann");
    const other = await joinAs(b, "bob");
    // Ann's socket, with Bob's token.
    const wrong = await viewerSocket(b, viewer, other.token);
    expect((await closeOf(wrong)).code).toBe(4403);
    // Not JSON, or not a hello.
    const rude = await viewerSocket(b, viewer, "x");
    expect((await closeOf(rude)).code).toBe(4403);
    const junk = await socket(
      `${api(b, "/viewer/ws")}?stageArn=${encodeURIComponent(viewer.stageArn)}&participantId=${viewer.participantId}`,
    );
    junk.ws.send(JSON.stringify({ type: "welcome" }));
    expect((await closeOf(junk)).code).toBe(4400);
    // Ann's seat is still Ann's; only a proven socket gets the welcome.
    const own = await viewerSocket(b, viewer);
    await own.next("welcome");
    own.close();
  });

  it("a viewer socket that never says hello is closed once its time is up", async () => {
    const { b } = await liveBroadcast();
    const viewer = await joinAs(b, "quiet");
    const quiet = await socket(
      `${api(b, "/viewer/ws")}?stageArn=${encodeURIComponent(viewer.stageArn)}&participantId=${viewer.participantId}`,
    );
    const closed = closeOf(quiet, 25_000);
    await new Promise((resolve) => setTimeout(resolve, 10_100));
    await runDurableObjectAlarm(env.STAGE_SHARD.getByName(viewer.stageArn));
    expect((await closed).code).toBe(4408);
    expect(quiet.messages.map((m) => m.type)).not.toContain("welcome");
  }, 30_000);

  it("one socket per participant: a second replaces the first, and closing the replaced one ends nothing", async () => {
    const { b } = await liveBroadcast();
    const viewer = await joinAs(b, "two-tabs");
    const first = await viewerSocket(b, viewer);
    await first.next("welcome");
    const replaced = closeOf(first);
    const second = await viewerSocket(b, viewer);
    await second.next("welcome");
    expect((await replaced).code).toBe(4409);
    // The first closing did not end the viewer the second holds.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect((await list(b, viewer.stageArn)).total).toBe(1);
    // The second closing does.
    second.close();
    await waitFor(async () => expect((await list(b, viewer.stageArn)).total).toBe(0));
  });

  it("leave and heartbeat act on the one participant proven, not on every session of the user id", async () => {
    const { b, publisher } = await liveBroadcast();
    // Two tabs of one user, and an attacker who knows the user id.
    const tab1 = await joinAs(b, "ann");
    const tab2 = await joinAs(b, "ann");
    const mallory = await joinAs(b, "mallory");
    const byUserId = await call(api(b, "/viewer/leave"), {
      body: { userId: "ann", stageArn: tab1.stageArn },
      key: null,
    });
    expect(byUserId.status).toBe(400);
    const withOwnToken = await call(api(b, "/viewer/leave"), {
      body: { ...asViewer(mallory), userId: "ann" },
      key: null,
    });
    expect(withOwnToken.status).toBe(403);
    expect(data(await call(api(b, "/viewer/leave"), { body: asViewer(tab1), key: null }))).toMatchObject({
      removed: 1,
    });
    const left = (await list(b, publisher.stageArn)).viewers.map((v) => v.participantId);
    expect(left).toContain(tab2.participantId);
    expect(left).not.toContain(tab1.participantId);
    expect(data(await call(api(b, "/viewer/heartbeat"), { body: asViewer(tab2), key: null }))).toMatchObject({
      userId: "ann",
    });
  });
});

describe("flooding the broadcast object", () => {
  async function subscribed(b: string): Promise<Socket> {
    const sock = await socket(api(b, "/ws"));
    sock.ws.send(JSON.stringify({ action: "subscribe", channel: "stats" }));
    await sock.next("subscribed");
    return sock;
  }

  it("sockets per broadcast are capped (SOCKETS_PER_BROADCAST): one more is 429 with Retry-After", async () => {
    const { b } = await liveBroadcast();
    const open: Socket[] = [];
    for (let i = 0; i < 8; i++) open.push(await subscribed(b));
    const { SELF } = await import("cloudflare:test");
    const refused = await SELF.fetch(`${ORIGIN}${api(b, "/ws")}`, { headers: { Upgrade: "websocket" } });
    expect(refused.status).toBe(429);
    expect(refused.headers.get("Retry-After")).toBe("30");
    expect(await refused.json()).toMatchObject({ success: false, error: { code: "RATE_LIMITED" } });
    for (const s of open) s.close();
  });

  it("a message too big closes the socket with 1009", async () => {
    const { b } = await liveBroadcast();
    const sock = await subscribed(b);
    sock.ws.send(JSON.stringify({ action: "subscribe", channel: "stats", pad: "x".repeat(10_000) }));
    expect((await closeOf(sock)).code).toBe(1009);
  });

  it("a socket that floods is closed with 4429", async () => {
    const { b } = await liveBroadcast();
    const sock = await subscribed(b);
    for (let i = 0; i < 40; i++) sock.ws.send(JSON.stringify({ action: "subscribe", channel: "stats" }));
    expect((await closeOf(sock)).code).toBe(4429);
    // The object still serves everyone else.
    const fresh = await subscribed(b);
    await fresh.next("stats_update");
    fresh.close();
  });

  it("with VIEWER_ACCESS=key the stats channel is closed to anyone without a key or a ticket", async () => {
    const { b } = await liveBroadcast();
    const vars = { VIEWER_ACCESS: "key", VIEWER_KEY: "viewer-key-0123456789" };
    const open = async (headers: Record<string, string> = {}) => {
      const response = await fetchWith(vars, api(b, "/ws"), { headers: { Upgrade: "websocket", ...headers } });
      expect(response.status).toBe(101);
      const sock = accept(response.webSocket!);
      sock.ws.send(JSON.stringify({ action: "subscribe", channel: "stats" }));
      return sock;
    };
    const anonymous = await open();
    expect((await closeOf(anonymous)).code).toBe(4401);
    const withKey = await open({ "x-api-key": vars.VIEWER_KEY });
    expect(Object.keys((await withKey.next("stats_update")).data!)).not.toContain("publisher");
    withKey.close();
  });

  it("a ticket in the subscribe message gives the operator's full stats, once", async () => {
    const { b, publisher } = await liveBroadcast();
    const { ticket } = data(await call<{ ticket: string }>(api(b, "/broadcaster/ticket"), { body: {} }));
    const operator = await socket(api(b, "/ws"));
    operator.ws.send(JSON.stringify({ action: "subscribe", channel: "stats", ticket }));
    expect((await operator.next("stats_update")).data).toMatchObject({
      publisher: { participantId: publisher.participantId },
    });
    operator.close();
    const replay = await socket(api(b, "/ws"));
    replay.ws.send(JSON.stringify({ action: "subscribe", channel: "stats", ticket }));
    expect((await closeOf(replay)).code).toBe(4401);
  });
});

describe("getting around rate limits and growing storage", () => {
  const on = { RATE_LIMITING: "on" };
  const post = (ip: string, body: object) => ({
    method: "POST",
    headers: { "content-type": "application/json", "cf-connecting-ip": ip },
    body: JSON.stringify(body),
  });

  it("made-up broadcast ids share the client's bucket, and each is a 404 that creates no object", async () => {
    // More than two windows' worth: the limiter counts in fixed 10 s windows, and a run may straddle two.
    const ids = Array.from({ length: 130 }, () => newBroadcastId());
    const statuses: number[] = [];
    for (const id of ids)
      statuses.push((await fetchWith(on, api(id, "/token/viewer"), post("198.51.100.20", { userId: "x" }))).status);
    expect(statuses.slice(0, 50).every((s) => s === 404)).toBe(true);
    expect(statuses).toContain(429);
    const stored = new Set((await listDurableObjectIds(env.BROADCAST)).map((id) => id.toString()));
    for (const id of ids) expect(stored.has(env.BROADCAST.idFromName(id).toString())).toBe(false);
  });

  it("an IPv6 client is one bucket per /64, however many addresses it rotates through", async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 130; i++) {
      const ip = `2001:db8:aaaa:bbbb:${(i + 1).toString(16)}::${i + 7}`;
      statuses.push((await fetchWith(on, api(newBroadcastId(), "/token/viewer"), post(ip, { userId: "x" }))).status);
    }
    expect(statuses).toContain(429);
    const neighbour = await fetchWith(on, api(newBroadcastId(), "/token/viewer"), post("2001:db8:aaaa:cccc::1", {}));
    expect(neighbour.status).not.toBe(429);
  });

  it("socket upgrades are rate limited per client", async () => {
    const { b } = await liveBroadcast();
    const statuses: number[] = [];
    const refusals: string[] = [];
    for (let i = 0; i < 70; i++) {
      const response = await fetchWith(on, api(b, "/ws"), {
        headers: { Upgrade: "websocket", "cf-connecting-ip": "198.51.100.30" },
      });
      response.webSocket?.accept();
      response.webSocket?.close(1000);
      statuses.push(response.status);
      if (response.status === 429)
        refusals.push(((await response.json()) as { error: { message: string } }).error.message);
    }
    expect(statuses[0]).toBe(101);
    // Refused by the client's rate limit (not by the cap on sockets per broadcast).
    expect(refusals.some((m) => m.includes("from this address"))).toBe(true);
  });

  it("the list of broadcasts needs the admin key, and guessing it is rate limited", async () => {
    const anonymous = await call("/api/broadcasts", { key: null });
    expect(anonymous.status).toBe(401);
    expect((await call("/api/broadcasts", { key: "viewer-key-0123456789" })).status).toBe(401);
    expect(data(await call<{ broadcasts: unknown[] }>("/api/broadcasts")).broadcasts).toEqual(expect.any(Array));
    const statuses: number[] = [];
    for (let i = 0; i < 70; i++)
      statuses.push(
        (
          await fetchWith(on, "/api/broadcasts", {
            headers: { "x-api-key": `guess-${i}`, "cf-connecting-ip": "198.51.100.40" },
          })
        ).status,
      );
    expect(statuses).toContain(401);
    expect(statuses).toContain(429);
  });

  it("a socket for a broadcast nobody started is a 404 that creates no object", async () => {
    const b = newBroadcastId();
    const { SELF } = await import("cloudflare:test");
    for (const path of ["/ws", "/ws?type=broadcaster", `/viewer/ws?stageArn=x&participantId=y`]) {
      const response = await SELF.fetch(`${ORIGIN}${api(b, path)}`, { headers: { Upgrade: "websocket" } });
      expect(response.status, path).toBe(404);
    }
    const stored = new Set((await listDurableObjectIds(env.BROADCAST)).map((id) => id.toString()));
    expect(stored.has(env.BROADCAST.idFromName(b).toString())).toBe(false);
  });
});

describe("replaying the broadcaster ticket", () => {
  it("a ticket opens one socket; the same ticket again is refused", async () => {
    const { b } = await liveBroadcast();
    const { ticket, expiresIn } = data(
      await call<{ ticket: string; expiresIn: number }>(api(b, "/broadcaster/ticket"), { body: {} }),
    );
    expect(expiresIn).toBeLessThanOrEqual(30);
    const first = await socket(api(b, "/ws?type=broadcaster"));
    first.ws.send(JSON.stringify({ type: "auth", ticket }));
    await first.next("ready");
    const replay = await socket(api(b, "/ws?type=broadcaster"));
    replay.ws.send(JSON.stringify({ type: "auth", ticket }));
    expect((await closeOf(replay)).code).toBe(4401);
    first.close();
  });

  it("a ticket is good for 30 seconds only", async () => {
    const b = newBroadcastId();
    data(await call(api(b, "/broadcaster/ticket"), { body: {} }));
    await runInDurableObject(env.BROADCAST.getByName(b), async (_o, state) => {
      const tickets = new Tickets(state.storage.sql);
      const now = Date.now();
      const late = await tickets.issue(now);
      expect(await tickets.redeem(late.ticket, now + 30_001)).toBe(false);
      const timely = await tickets.issue(now);
      expect(await tickets.redeem(timely.ticket, now + 29_000)).toBe(true);
    });
  });

  it("a broadcaster socket that never redeems a ticket is closed once its time is up", async () => {
    const { b } = await liveBroadcast();
    const idle = await socket(api(b, "/ws?type=broadcaster"));
    expect((await closeOf(idle, 20_000)).code).toBe(4408);
  }, 30_000);

  it("a socket that never redeems a ticket hears nothing the broadcaster hears", async () => {
    const { b } = await liveBroadcast();
    const lurker = await socket(api(b, "/ws?type=broadcaster"));
    data(await call(api(b, "/stage"), { body: {} }));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(lurker.messages.map((m) => m.type)).not.toContain("stage_created");
    lurker.close();
  });
});

describe("pages and share links", () => {
  it("the share settings give the viewer key to the admin only, and only when viewers need one", async () => {
    const vars = { VIEWER_ACCESS: "key", VIEWER_KEY: "viewer-key-0123456789" };
    const ask = (key?: string) =>
      fetchWith(vars, api(newBroadcastId(), "/broadcaster/share"), { headers: key ? { "x-api-key": key } : {} });
    expect((await ask()).status).toBe(401);
    expect((await ask(vars.VIEWER_KEY)).status).toBe(401);
    expect(await (await ask(ADMIN)).json()).toMatchObject({
      data: { viewerAccess: "key", viewerKey: vars.VIEWER_KEY },
    });
    const open = data(await call<Record<string, unknown>>(api(newBroadcastId(), "/broadcaster/share")));
    expect(open).toEqual({ viewerAccess: "open" });
  });
});

describe("user ids", () => {
  it("takes any text IVS takes: names in any script, spaces, emoji", async () => {
    const { b } = await liveBroadcast();
    for (const userId of ["Zoë Ørsted", "山田 太郎", "مشاهد", "🦊 fox", "a".repeat(128)]) {
      const viewer = await joinAs(b, userId);
      expect(viewer.userId).toBe(userId);
      await call(api(b, "/viewer/leave"), { body: asViewer(viewer), key: null });
    }
  });

  it("refuses control characters, more than 128 characters, and participant ids IVS would refuse", async () => {
    const { b } = await liveBroadcast();
    for (const userId of ["line\nbreak", "nul\u0000", "esc\u001b[31m", "a".repeat(129), "", "\ud800"]) {
      const answer = await call(api(b, "/token/viewer"), { body: { userId }, key: null });
      expect(answer.status, JSON.stringify(userId)).toBe(400);
    }
    const viewer = await joinAs(b, "ok");
    const underscore = await call(api(b, "/viewer/heartbeat"), {
      body: { ...asViewer(viewer), participantId: "has_underscore" },
      key: null,
    });
    expect(underscore.status).toBe(400);
  });
});
