import { env, evictAllDurableObjects, runInDurableObject } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import { fanoutTags } from "../../worker/ivs/tags.ts";
import {
  api,
  call,
  data,
  emulator,
  ivs,
  joinAs,
  live,
  liveWithEdge,
  newBroadcastId,
  publishing,
  replicating,
  runCron,
  tick,
  waitFor,
} from "./support.ts";

/**
 * No fault leaks a stage (docs/design.md, "Faults"): each test performs one fault with the
 * emulator's fault injection or by cutting the object short, and shows that once the fault
 * clears, a tick (the object's alarm) or the cron leaves IVS with exactly the stages Fanout
 * has, and nothing spinning.
 */

afterEach(async () => {
  await emulator.clearFaults();
  await fetch(`${env.IVS_ENDPOINT}/_emulator/rate-limits`, { method: "PUT", body: "{}" });
});

type Token = { token: string; participantId: string; stageArn: string };
type StageView = { stageArn: string; role: string; state: string; replication: string };

const broadcast = (b: string) => env.BROADCAST.getByName(b);

/** Edits the object's storage as a crash or time would have left it; the object is restarted to read it. */
async function storage(b: string, edit: (sql: SqlStorage, state: DurableObjectState) => unknown) {
  await runInDurableObject(broadcast(b), (_o, state) => edit(state.storage.sql, state));
  await evictAllDurableObjects();
}

const arnsAtIvs = async (b: string) => (await emulator.stagesOf(b)).map((s) => s.arn).sort();
const registered = async (b: string) =>
  data(await call<{ stages: StageView[] }>(api(b, "/stage/list")))
    .stages.map((s) => s.stageArn)
    .sort();
const eventTypes = async (b: string) =>
  data(await call<{ events: { type: string; detail: Record<string, unknown> }[] }>(api(b, "/events?limit=200"))).events;
const stats = async (b: string) =>
  data(
    await call<{
      warnings: { code: string; message: string }[];
      usage: {
        participantHours: { total: number; viewers: number; publisher: number };
        estimatedCost: number | null;
        stages: { now: number; peak: number };
      };
    }>(api(b, "/stats")),
  );

const alarmIn = async (b: string) => {
  const at = await runInDurableObject(broadcast(b), (_o, state) => state.storage.getAlarm());
  return at === null ? null : at - Date.now();
};
/** Makes every queued deletion due now, instead of waiting out its backoff. */
const dueNow = (b: string) =>
  storage(b, (sql) => sql.exec("UPDATE stages SET delete_next_at = 0 WHERE state = 'deleting'"));

async function endBroadcast(b: string) {
  return data(await call<{ deleted: string[]; pending: string[] }>(api(b, "/broadcast/end"), { body: {} }));
}

describe("deleting stages, whatever fails", () => {
  it("a DeleteStage that fails during end is retried by the alarm until IVS confirms every stage is gone", async () => {
    const b = newBroadcastId();
    await liveWithEdge(b);
    await emulator.faults({ rules: [{ operation: "DeleteStage", errorType: "InternalServerException" }] });
    const ended = await endBroadcast(b);
    expect(ended.deleted).toEqual([]);
    expect(ended.pending.length).toBeGreaterThanOrEqual(2);
    expect(await arnsAtIvs(b)).toEqual(ended.pending.sort());
    expect((await eventTypes(b)).map((e) => e.type)).toContain("stage_delete_failed");
    expect((await stats(b)).warnings.map((w) => w.code)).toContain("DELETE_FAILING");

    await emulator.clearFaults();
    await waitFor(async () => {
      await tick(b);
      expect(await arnsAtIvs(b)).toEqual([]);
    }, 15_000);
    expect(await registered(b)).toEqual([]);
    expect((await stats(b)).warnings).toEqual([]);
  });

  it("end is idempotent: called again, it resumes the deletions that are left", async () => {
    const b = newBroadcastId();
    await liveWithEdge(b);
    await emulator.faults({ rules: [{ operation: "DeleteStage", errorType: "InternalServerException" }] });
    const left = (await endBroadcast(b)).pending.sort();
    expect(left.length).toBeGreaterThanOrEqual(2);
    await emulator.clearFaults();
    const again = await endBroadcast(b);
    // Whatever the alarm has not deleted meanwhile, this call does.
    expect(left).toEqual(expect.arrayContaining(again.deleted));
    expect(again.pending).toEqual([]);
    expect(await arnsAtIvs(b)).toEqual([]);
    expect(await endBroadcast(b)).toEqual({ deleted: [], pending: [] });
  });

  it("a StopParticipantReplication that fails before DeleteStage is retried, and the stage still goes", async () => {
    const b = newBroadcastId();
    const { grant, edge } = await liveWithEdge(b);
    const publisher = await publishing(b, grant);
    await replicating(b, edge);
    await emulator.faults({
      rules: [{ operation: "StopParticipantReplication", errorType: "InternalServerException" }],
    });
    const ended = await endBroadcast(b);
    expect(ended.pending).toContain(edge);
    await emulator.clearFaults();
    await waitFor(async () => {
      await dueNow(b);
      await tick(b);
      expect(await arnsAtIvs(b)).toEqual([]);
    }, 15_000);
    publisher.close();
  });

  it("an object restarted in the middle of deleting, with its alarm lost, has the stages deleted by the next cron", async () => {
    const b = newBroadcastId();
    await live(b);
    // What a crash right after the deletion was recorded leaves: rows in `deleting`, the broadcast ended, no alarm.
    await storage(b, async (sql, state) => {
      sql.exec("UPDATE stages SET state = 'deleting', delete_next_at = 0");
      sql.exec("UPDATE broadcast SET status = 'ended', ended_at = ?", Date.now());
      await state.storage.deleteAlarm();
    });
    expect(await arnsAtIvs(b)).toHaveLength(1);
    await runCron();
    expect(await arnsAtIvs(b)).toEqual([]);
  });

  it("the alarm backs off while DeleteStage keeps failing (1 s, 2 s, 4 s, 8 s), instead of spinning", async () => {
    const b = newBroadcastId();
    await live(b);
    await emulator.faults({ rules: [{ operation: "DeleteStage", errorType: "InternalServerException" }] });
    await endBroadcast(b);
    const waits: number[] = [];
    for (let i = 0; i < 4; i++) {
      await dueNow(b);
      await tick(b);
      waits.push((await alarmIn(b))!);
    }
    // Each failure waits twice as long as the one before (end's own failure waited 1 s).
    expect(waits[0]!).toBeGreaterThanOrEqual(1_900);
    for (let i = 1; i < waits.length; i++) expect(Math.round(waits[i]! / waits[i - 1]!)).toBe(2);
    await emulator.clearFaults();
    await dueNow(b);
    await tick(b);
    expect(await arnsAtIvs(b)).toEqual([]);
    // Nothing left to do: no alarm at all until retention is due.
    expect(await alarmIn(b)).toBeGreaterThan(50_000);
  });
});

describe("creating stages, whatever fails", () => {
  it("a restart in the middle of CreateStage leaves no stage behind, and its placeholder is never handed out", async () => {
    const b = newBroadcastId();
    const grant = await live(b);
    // What an object cut short during CreateStage leaves: a placeholder row, and IVS's stage carrying its request tag.
    const request = crypto.randomUUID();
    const made = (
      await ivs().createStage({ tags: fanoutTags({ broadcastId: b, role: "origin", deployment: "fanout", request }) })
    ).stage.arn;
    await storage(b, (sql) =>
      sql.exec(
        "INSERT INTO stages (arn, role, state, feed, owned, placeholder, created_at) VALUES (?, 'origin', 'creating', 'replica', 1, 1, ?)",
        request,
        Date.now() - 60_000,
      ),
    );
    expect(await registered(b)).toEqual([grant.stageArn]);
    const renewed = data(
      await call<Token>(api(b, "/token/publisher"), { body: { userId: "host", participantId: grant.participantId } }),
    );
    expect(renewed.stageArn).toBe(grant.stageArn);

    await tick(b);
    expect(await arnsAtIvs(b)).toEqual([grant.stageArn]);
    expect(await arnsAtIvs(b)).not.toContain(made);
    expect((await eventTypes(b)).find((e) => e.type === "placeholder_resolved")?.detail).toMatchObject({
      request,
      stagesFound: 1,
      adopted: false,
    });
  });

  it("a CreateStage that times out is not repeated: the stage it made is found by its tag and used, no duplicate", async () => {
    const b = newBroadcastId();
    await live(b);
    // IVS carries the call out, but after the client's 2 s timeout.
    await emulator.faults({ delays: [{ operation: "CreateStage", ms: 2_500 }] });
    const t0 = Date.now();
    const answer = await call(api(b, "/stage"), { body: {} });
    console.log(
      "DEBUG",
      Date.now() - t0,
      JSON.stringify(answer.body),
      JSON.stringify(await (await fetch(`${env.IVS_ENDPOINT}/_emulator/faults`)).json()),
    );
    expect(answer.status).toBe(502);
    await emulator.clearFaults();
    await waitFor(async () => {
      await tick(b);
      expect((await eventTypes(b)).find((e) => e.type === "placeholder_resolved")?.detail).toMatchObject({
        stagesFound: 1,
        adopted: true,
      });
    }, 20_000);
    // Every stage IVS ever made for this broadcast: the origin and the one edge, never a second.
    const metrics = (await (await fetch(`${env.IVS_ENDPOINT}/_emulator/metrics`)).json()) as {
      stages: { tags: Record<string, string> }[];
    };
    expect(metrics.stages.filter((s) => s.tags["fanout:broadcast"] === b)).toHaveLength(2);
    expect(await arnsAtIvs(b)).toEqual(await registered(b));
    await endBroadcast(b);
  });

  it("after a 402 on CreateStage, no other is asked for until the backoff is over; joins hear when to come back, the operator why", async () => {
    const b = newBroadcastId();
    await live(b);
    await emulator.faults({ rules: [{ operation: "CreateStage", errorType: "ServiceQuotaExceededException" }] });
    // Capacity 3: the third viewer asks for a second stage, which IVS refuses.
    for (let i = 0; i < 3; i++) await joinAs(b, `v${i}`);
    await waitFor(async () => expect((await eventTypes(b)).map((e) => e.type)).toContain("stage_create_refused"));
    const turnedAway = [];
    for (let i = 3; i < 6; i++)
      turnedAway.push(await call(api(b, "/token/viewer"), { body: { userId: `v${i}` }, key: null }));
    for (let i = 0; i < 3; i++) await tick(b);
    for (const answer of turnedAway) {
      expect(answer.status).toBe(503);
      expect(answer.body).toMatchObject({ success: false, error: { code: "STAGE_FULL" } });
      expect(Number(answer.headers.get("Retry-After"))).toBeGreaterThan(20);
    }
    const refusals = (await eventTypes(b)).filter((e) => e.type === "stage_create_refused");
    expect(refusals).toHaveLength(1);
    expect(refusals[0]!.detail).toMatchObject({ reason: "quota", error: "ServiceQuotaExceededException" });
    expect((await stats(b)).warnings.map((w) => w.code)).toEqual(["STAGE_QUOTA"]);
    await endBroadcast(b);
  });

  it("after a 429 on CreateStage (past the client's own retries), creation backs off too, and joins hear when to come back", async () => {
    const b = newBroadcastId();
    await live(b);
    await emulator.faults({ rules: [{ operation: "CreateStage", errorType: "ThrottlingException" }] });
    for (let i = 0; i < 3; i++) await joinAs(b, `v${i}`);
    await waitFor(
      async () => expect((await eventTypes(b)).map((e) => e.type)).toContain("stage_create_refused"),
      20_000,
    );
    const answer = await call(api(b, "/token/viewer"), { body: { userId: "v3" }, key: null });
    expect(answer.status).toBe(503);
    expect(Number(answer.headers.get("Retry-After"))).toBeGreaterThanOrEqual(1);
    expect((await eventTypes(b)).filter((e) => e.type === "stage_create_refused")).toEqual([
      expect.objectContaining({ detail: expect.objectContaining({ reason: "throttled" }) }),
    ]);
    expect((await stats(b)).warnings.map((w) => w.code)).toEqual(["IVS_THROTTLING"]);
    await emulator.clearFaults();
    await endBroadcast(b);
  });

  it("several broadcasts ending at once stay within the account's 5 TPS for DeleteStage: none is throttled, every stage goes", async () => {
    const ids = Array.from({ length: 4 }, () => newBroadcastId());
    for (const b of ids) await liveWithEdge(b);
    await fetch(`${env.IVS_ENDPOINT}/_emulator/rate-limits`, {
      method: "PUT",
      body: JSON.stringify({ DeleteStage: 5 }),
    });
    await fetch(`${env.IVS_ENDPOINT}/_emulator/metrics`, { method: "DELETE" });
    const ended = await Promise.all(ids.map((b) => endBroadcast(b)));
    expect(ended.flatMap((e) => e.pending)).toEqual([]);
    const metrics = (await (await fetch(`${env.IVS_ENDPOINT}/_emulator/metrics`)).json()) as {
      operations: Record<string, { calls: number; throttled: number }>;
    };
    expect(metrics.operations.DeleteStage!.calls).toBeGreaterThanOrEqual(8);
    expect(metrics.operations.DeleteStage!.throttled).toBe(0);
    for (const b of ids) expect(await arnsAtIvs(b)).toEqual([]);
  });

  it("several broadcasts starting at once stay within the account's 5 TPS for CreateStage: none is throttled", async () => {
    await fetch(`${env.IVS_ENDPOINT}/_emulator/rate-limits`, {
      method: "PUT",
      body: JSON.stringify({ CreateStage: 5 }),
    });
    await fetch(`${env.IVS_ENDPOINT}/_emulator/metrics`, { method: "DELETE" });
    const ids = Array.from({ length: 8 }, () => newBroadcastId());
    const grants = await Promise.all(
      ids.map((b) => call<Token>(api(b, "/token/publisher"), { body: { userId: "host" } })),
    );
    for (const g of grants) data(g);
    const metrics = (await (await fetch(`${env.IVS_ENDPOINT}/_emulator/metrics`)).json()) as {
      operations: Record<string, { calls: number; throttled: number; peakServedPerSecond: number }>;
    };
    expect(metrics.operations.CreateStage).toMatchObject({ calls: 8, throttled: 0 });
    expect(metrics.operations.CreateStage!.peakServedPerSecond).toBeLessThanOrEqual(4);
    for (const b of ids) await endBroadcast(b);
  });
});

describe("ticks and the cron, whatever fails", () => {
  it("one IVS failure inside a tick (ListParticipantReplicas) does not stop it: the alarm is still set", async () => {
    const b = newBroadcastId();
    const { grant, edge } = await liveWithEdge(b);
    const publisher = await publishing(b, grant);
    await replicating(b, edge);
    await emulator.faults({ rules: [{ operation: "ListParticipantReplicas", errorType: "InternalServerException" }] });
    await storage(b, (sql) => sql.exec("UPDATE broadcast SET replicas_checked_at = 0"));
    await tick(b);
    const next = await alarmIn(b);
    expect(next).not.toBeNull();
    expect(next!).toBeLessThanOrEqual(5_000);
    publisher.close();
    await emulator.clearFaults();
    await endBroadcast(b);
  });

  it("one broadcast whose reconcile throws does not stop the cron for the others", async () => {
    const broken = newBroadcastId();
    await live(broken);
    // A broadcast whose storage is damaged: its reconcile throws whatever IVS says.
    await runInDurableObject(broadcast(broken), (_o, state) => {
      state.storage.sql.exec("DROP TABLE viewing_sessions");
    });
    const healthy = newBroadcastId();
    await liveWithEdge(healthy);
    const stages = data(await call<{ stages: StageView[] }>(api(healthy, "/stage/list"))).stages;
    const vanished = stages.find((s) => s.role === "edge")!.stageArn;
    // Deleted behind Fanout's back: the cron drops it, once GetStage confirms.
    await ivs().deleteStage(vanished);
    await new Promise((resolve) => setTimeout(resolve, 5));
    await runCron();
    expect(await registered(healthy)).not.toContain(vanished);
  });
});

describe("after the end", () => {
  it("retention deletes an ended broadcast's history: viewing sessions, events and the publisher's user id", async () => {
    const b = newBroadcastId();
    await live(b);
    const viewer = await joinAs(b, "v0");
    await call(api(b, "/viewer/leave"), { body: viewer, key: null });
    await waitFor(async () =>
      expect(data(await call<{ sessions: unknown[] }>(api(b, "/viewer/history/v0"))).sessions).toHaveLength(1),
    );
    await endBroadcast(b);
    expect(await alarmIn(b)).not.toBeNull();
    // 91 days on (RETENTION_DAYS is 90).
    const past = 91 * 86_400_000;
    await storage(b, (sql) => {
      sql.exec("UPDATE viewing_sessions SET joined_at = joined_at - ?, left_at = left_at - ?", past, past);
      sql.exec("UPDATE events SET at = at - ?", past);
      sql.exec("UPDATE publisher SET since = since - ?", past);
      sql.exec("UPDATE broadcast SET ended_at = ended_at - ?, started_at = started_at - ?", past, past);
    });
    await tick(b);
    expect(data(await call<{ sessions: unknown[] }>(api(b, "/viewer/history/v0"))).sessions).toEqual([]);
    expect(data(await call<{ publisher: unknown }>(api(b, "/stats/publisher"))).publisher).toBeNull();
    expect((await eventTypes(b)).map((e) => e.type)).toEqual(["history_expired"]);
  });

  it("a publisher-token renewal after the end is 409 CONFLICT: it never restarts the broadcast or creates an origin", async () => {
    const b = newBroadcastId();
    const grant = await live(b);
    await endBroadcast(b);
    const renewal = await call(api(b, "/token/publisher"), {
      body: { userId: "host", participantId: grant.participantId },
    });
    expect(renewal.status).toBe(409);
    expect(renewal.body).toMatchObject({ success: false, error: { code: "CONFLICT" } });
    expect(await arnsAtIvs(b)).toEqual([]);
    expect(data(await call<{ status: string }>(api(b, "/stats"))).status).toBe("ended");
    // A new token (no participantId) is the operator starting a new session: that one does.
    data(await call(api(b, "/token/publisher"), { body: { userId: "host" } }));
    expect(await arnsAtIvs(b)).toHaveLength(1);
    await endBroadcast(b);
  });
});

describe("the pool after a crowd", () => {
  it("is at most what the audience needs plus one, however fast the crowd arrived", async () => {
    const b = newBroadcastId();
    await live(b);
    // Two viewers at once: the join rate forecasts far more, but 2 viewers need 1 stage of 3 (at 80 %), plus one spare.
    await Promise.all([joinAs(b, "a"), joinAs(b, "b")]);
    for (let i = 0; i < 3; i++) await tick(b);
    const stages = data(await call<{ stages: StageView[] }>(api(b, "/stage/list"))).stages.filter(
      (s) => s.state !== "deleting",
    );
    expect(stages.length).toBeLessThanOrEqual(2);
    await endBroadcast(b);
  });
});

describe("cost on the dashboard", () => {
  it("counts participant-hours of viewers and the publisher, stages now and at peak", async () => {
    const b = newBroadcastId();
    const { grant } = await liveWithEdge(b);
    await call(api(b, "/broadcaster/publish-state"), { body: { stageArn: grant.stageArn, state: "publishing" } });
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    const usage = (await stats(b)).usage;
    // 3 viewers and the publisher for over a second: at least 4 participant-seconds.
    expect(usage.participantHours.viewers).toBeGreaterThanOrEqual(3 / 3600);
    expect(usage.participantHours.publisher).toBeGreaterThan(0);
    expect(usage.stages.now).toBeGreaterThanOrEqual(2);
    const peak = usage.stages.now;
    await endBroadcast(b);
    const after = (await stats(b)).usage;
    expect(after.stages).toEqual({ now: 0, peak });
    expect(after.participantHours.total).toBeGreaterThanOrEqual(usage.participantHours.total);
    // Ended: nothing accrues any more.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await stats(b)).usage.participantHours).toEqual(after.participantHours);
  });
});
