import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { relayName } from "../../worker/broadcast/channels.ts";
import { cacheApiTables } from "../../worker/join/cached-table.ts";
import { RoutingCache } from "../../worker/join/routing-cache.ts";
import type { RoutingTable } from "../../worker/broadcast/contract.ts";
import {
  accept,
  api,
  call,
  emulator,
  joinAs,
  live,
  newBroadcastId,
  socket,
  tick,
  waitFor,
  type Socket,
} from "./support.ts";

/**
 * What keeps a million viewers off any one object (docs/design.md, "Internet scale"): the routing
 * table shared by the isolates of a location, stats sockets on relays, the pool sized by arrivals,
 * and pushes within a budget. Real objects, the real Cache API of workerd.
 */

/** Every test ends what it started: the cron of a later file reconciles what is left live. */
const end = (b: string) => call(api(b, "/broadcast/end"), { body: {} });

describe("the routing table, per location", () => {
  /** A live broadcast, and its object's table read through a counter of the reads that reach it. */
  async function liveReader() {
    const b = newBroadcastId();
    const grant = await live(b);
    const counted = { reads: 0 };
    const read = async (): Promise<RoutingTable> => {
      counted.reads++;
      return env.BROADCAST.getByName(b).routingTable();
    };
    return { b, grant, counted, read };
  }
  const concurrently = (isolate: RoutingCache, b: string, read: () => Promise<RoutingTable>, n: number, now: number) =>
    Promise.all(Array.from({ length: n }, () => isolate.get(b, read, undefined, now)));

  it("is read from the Broadcast object once per location per interval, whatever the joins and isolates", async () => {
    const { b, grant, counted, read } = await liveReader();
    const location = cacheApiTables();
    expect(location).toBeDefined();
    const isolates = Array.from({ length: 5 }, () => new RoutingCache(location));
    const now = Date.now();
    // One isolate, fifty joins at once: one read.
    const tables = await concurrently(isolates[0]!, b, read, 50, now);
    expect(counted.reads).toBe(1);
    expect(tables[0]!.stages.map((s) => s.arn)).toEqual([grant.stageArn]);
    // The location's other isolates, fifty joins each at once: the table the first stored.
    await Promise.all(isolates.slice(1).map((isolate) => concurrently(isolate, b, read, 50, now + 10)));
    expect(counted.reads).toBe(1);
    // The next interval: one read again, by whichever isolate looks first.
    for (const isolate of isolates) await concurrently(isolate, b, read, 20, now + 1_100);
    expect(counted.reads).toBe(2);
    await end(b);
  });

  it("while one isolate reads the table for the location, the others wait for it rather than read it too", async () => {
    const { b, counted, read } = await liveReader();
    // The object is far away: its answer takes 100 ms.
    const slow = async () => {
      const table = await read();
      await new Promise((resolve) => setTimeout(resolve, 100));
      return table;
    };
    const location = cacheApiTables();
    const [first, second] = [new RoutingCache(location), new RoutingCache(location)];
    const now = Date.now();
    const reading = first.get(b, slow, undefined, now);
    await new Promise((resolve) => setTimeout(resolve, 20));
    // The second isolate looks meanwhile: nothing yet, and the refresh is claimed.
    expect(await second.get(b, slow, undefined, now + 20)).toBeUndefined();
    await reading;
    expect((await second.get(b, slow, undefined, now + 150))?.stages).toHaveLength(1);
    expect(counted.reads).toBe(1);
    await end(b);
  });

  it("without the Cache API, each isolate reads for itself, as before", async () => {
    const { b, counted, read } = await liveReader();
    const isolates = Array.from({ length: 5 }, () => new RoutingCache(undefined));
    const now = Date.now();
    await Promise.all(isolates.map((isolate) => concurrently(isolate, b, read, 50, now)));
    expect(counted.reads).toBe(5);
    await end(b);
  });

  it("a join that finds its copy out of date reads the object, not the location's copy", async () => {
    const { b, counted, read } = await liveReader();
    const isolate = new RoutingCache(cacheApiTables());
    const now = Date.now();
    await isolate.get(b, read, undefined, now);
    await isolate.get(b, read, 0, now + 5);
    expect(counted.reads).toBe(2);
    await end(b);
  });
});

describe("stats sockets on relays", () => {
  async function subscribed(b: string): Promise<Socket> {
    const sock = await socket(api(b, "/ws"));
    sock.ws.send(JSON.stringify({ action: "subscribe", channel: "stats" }));
    await sock.next("subscribed");
    await sock.next("stats_update");
    return sock;
  }
  const relay = (b: string, index: number) => env.STATS_RELAY.getByName(relayName(b, index));
  const relaysOf = (b: string) =>
    runInDurableObject(env.BROADCAST.getByName(b), (_o, state) =>
      state.storage.sql.exec<{ idx: number; sockets: number }>("SELECT idx, sockets FROM stats_relays").toArray(),
    );

  it("a relay holds its sockets (never more than STATS_SOCKETS_PER_RELAY), the Broadcast object none, and each relay gets one push per update", async () => {
    const b = newBroadcastId();
    const grant = await live(b);
    const open: Socket[] = [];
    for (let i = 0; i < 6; i++) open.push(await subscribed(b));
    const loads = await Promise.all([relay(b, 0).load(), relay(b, 1).load()]);
    // Four a relay in the tests: six sockets are on two relays, none on the Broadcast object.
    expect(loads.map((l) => l.sockets).reduce((a, c) => a + c)).toBe(6);
    expect(Math.max(...loads.map((l) => l.sockets))).toBeLessThanOrEqual(4);
    expect(await runInDurableObject(env.BROADCAST.getByName(b), (_o, state) => state.getWebSockets().length)).toBe(0);
    // The relays told the broadcast what they hold (the first report within 10 s, at a random moment).
    await waitFor(async () => expect((await relaysOf(b)).reduce((n, r) => n + r.sockets, 0)).toBe(6), 15_000);

    // One update (a viewer joins): every subscriber hears it, and each relay was pushed to once per update.
    const before = await Promise.all([relay(b, 0).load(), relay(b, 1).load()]);
    const updatesBefore = (await env.BROADCAST.getByName(b).pushes()).updates;
    await joinAs(b, "viewer-1", grant.stageArn);
    await waitFor(() =>
      expect(open.every((s) => s.messages.some((m) => m.type === "stats_update" && m.data?.totalViewers === 1))).toBe(
        true,
      ),
    );
    const updates = (await env.BROADCAST.getByName(b).pushes()).updates - updatesBefore;
    expect(updates).toBeGreaterThanOrEqual(1);
    const after = await Promise.all([relay(b, 0).load(), relay(b, 1).load()]);
    expect(after.map((l, i) => l.pushes - before[i]!.pushes)).toEqual([updates, updates]);

    // The last socket gone, the relays are forgotten: nothing is pushed to them any more.
    for (const s of open) s.close();
    await waitFor(async () => expect(await relaysOf(b)).toEqual([]));
    await end(b);
  });

  it("a relay sends a burst of updates on as one message per subscriber, the latest", async () => {
    // A relay of its own, with no broadcast pushing to it: only this test's updates reach it.
    const b = newBroadcastId();
    const response = await relay(b, 0).fetch("https://relay/ws", {
      headers: { Upgrade: "websocket", "x-fanout-relay": relayName(b, 0), "x-fanout-access": "viewer" },
    });
    const sock = accept(response.webSocket!);
    sock.ws.send(JSON.stringify({ action: "subscribe", channel: "stats" }));
    await sock.next("stats_update");
    const stats = await env.BROADCAST.getByName(b).stats();
    const ours = () =>
      sock.messages.filter((m) => m.type === "stats_update" && ((m.data?.totalViewers as number) ?? 0) > 0);
    for (let totalViewers = 1; totalViewers <= 10; totalViewers++) await relay(b, 0).push({ ...stats, totalViewers });
    await waitFor(() => expect(ours().at(-1)?.data?.totalViewers).toBe(10));
    // The first at once and the latest after the interval: never one per push.
    expect(ours().map((m) => m.data?.totalViewers)).toEqual([1, 10]);
    sock.close();
  });

  it("the Broadcast object's pushes stay within its budget, however many relays: updates are spaced instead", async () => {
    const b = newBroadcastId();
    const grant = await live(b);
    const broadcast = env.BROADCAST.getByName(b);
    // 150 relays holding sockets (as they would report): 150 pushes an update, at most 100 a second (MAX_PUSHES_PER_SECOND).
    for (let index = 0; index < 150; index++) await broadcast.relayLoad({ index, sockets: 1 });
    const { updates } = await broadcast.pushes();
    let most = 0;
    const started = Date.now();
    // Something changes every 50 ms for 3.2 s (a crowd's load reports).
    for (let i = 0; Date.now() - started < 3_200; i++) {
      await broadcast.reportLoad({ stageArn: grant.stageArn, viewers: i % 3, joinRate: 0, ended: [] });
      most = Math.max(most, (await broadcast.pushes()).thisSecond);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    // An update is two slices (100, then 50 a second later), and the next starts after it: every
    // 2 s at most, two updates in 3.2 s rather than the thirteen of every 250 ms; never more than
    // 100 pushes in one second.
    const made = (await broadcast.pushes()).updates - updates;
    expect(made).toBeGreaterThanOrEqual(1);
    expect(made).toBeLessThanOrEqual(2);
    expect(most).toBeLessThanOrEqual(100);
    await end(b);
  });
});

describe("the pool, sized by arrivals", () => {
  const stagesOf = async (b: string) =>
    (await env.BROADCAST.getByName(b).stages()).filter((s) => s.state !== "deleting");

  /** The origin's shard reports a join rate, as after a second of admissions; the policy runs at the tick. */
  async function arriving(joinRate: number): Promise<number> {
    const b = newBroadcastId();
    const grant = await live(b);
    await env.BROADCAST.getByName(b).reportLoad({ stageArn: grant.stageArn, viewers: 1, joinRate, ended: [] });
    await tick(b);
    const stages = await stagesOf(b);
    await end(b);
    return stages.length;
  }

  it("adds stages when a shard's admission rate passes the limit (ADMISSIONS_PER_SHARD_PER_SECOND), beyond what the audience needs", async () => {
    // 300 a second: under 80 % of 500. One viewer needs one stage; the lead asks for the one spare.
    expect(await arriving(300)).toBe(2);
    // 1,000 a second: three stages share the crowd at 333 each.
    expect(await arriving(1_000)).toBe(3);
  });

  it("POST /crowd makes the pool ready for an announced crowd before it comes", async () => {
    const b = newBroadcastId();
    await live(b);
    // 9 viewers on stages of 3 (2.4 at 80 %) need 4 stages: the maximum in the tests.
    const answer = await call<{ stagesWanted: number; joinRate: number }>(api(b, "/crowd"), {
      body: { viewers: 9, withinSeconds: 60 },
    });
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ success: true, data: { stagesWanted: 4, joinRate: 0.15 } });
    await waitFor(async () => expect((await stagesOf(b)).filter((s) => s.state === "ready")).toHaveLength(4));
    const events = await env.BROADCAST.getByName(b).events({ limit: 50 });
    expect(events.map((e) => e.type)).toContain("crowd_announced");
    await end(b);
  });

  it("creates the stages it needs several at once, not one CreateStage round trip after another", async () => {
    const b = newBroadcastId();
    await live(b);
    // Every CreateStage takes 1.5 s at IVS: one after another, no two would start in the same second.
    await emulator.faults({ delays: [{ operation: "CreateStage", ms: 1_500 }] });
    await fetch(`${env.IVS_ENDPOINT}/_emulator/metrics`, { method: "DELETE" });
    try {
      await call(api(b, "/crowd"), { body: { viewers: 9, withinSeconds: 60 } });
      const metrics = (await (await fetch(`${env.IVS_ENDPOINT}/_emulator/metrics`)).json()) as {
        operations: Record<string, { calls: number; peakPerSecond: number }>;
      };
      expect(metrics.operations.CreateStage!.calls).toBe(3);
      expect(metrics.operations.CreateStage!.peakPerSecond).toBeGreaterThanOrEqual(2);
    } finally {
      await emulator.clearFaults();
    }
    await end(b);
  });

  it("POST /crowd takes only the operator's key and a crowd that makes sense", async () => {
    const b = newBroadcastId();
    await live(b);
    expect((await call(api(b, "/crowd"), { body: { viewers: 9, withinSeconds: 60 }, key: null })).status).toBe(401);
    for (const body of [{ viewers: 0, withinSeconds: 60 }, { viewers: 9, withinSeconds: 0 }, { viewers: 9 }, {}]) {
      const answer = await call(api(b, "/crowd"), { body });
      expect(answer.status, JSON.stringify(body)).toBe(400);
      expect(answer.body).toMatchObject({ success: false, error: { code: "VALIDATION_ERROR" } });
    }
    await end(b);
  });
});
