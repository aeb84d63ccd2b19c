import { env, evictAllDurableObjects, runInDurableObject } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import {
  api,
  call,
  connectPublisher,
  data,
  emulator,
  ivs,
  joinAs,
  liveWithEdge,
  newBroadcastId,
  publishing,
  replicating,
  tick,
  waitFor,
} from "./support.ts";

/**
 * Where real IVS is less kind than the emulator used to be (issue 11), performed: the emulator now
 * behaves as IVS does and each test shows Fanout coping.
 */

const paging = (maxPageSize: number | null) =>
  fetch(`${env.IVS_ENDPOINT}/_emulator/paging`, { method: "PUT", body: JSON.stringify({ maxPageSize }) });

afterEach(async () => {
  await paging(null);
  await emulator.clearFaults();
});

type Token = { token: string; participantId: string; stageArn: string };
type StageView = { stageArn: string; role: string; state: string; replication: string; feed: string };
const stagesOf = async (b: string) => data(await call<{ stages: StageView[] }>(api(b, "/stage/list"))).stages;

describe("lists read to the last page", () => {
  it("replicas beyond the first page of ListParticipantReplicas are seen: a healthy replica is not restarted", async () => {
    const b = newBroadcastId();
    const grant = data(await call<Token>(api(b, "/token/publisher"), { body: { userId: "host" } }));
    // 7 viewers on stages of 3: the origin and two edges.
    for (let i = 0; i < 7; i++) await joinAs(b, `viewer-${i}`);
    const publisher = await publishing(b, grant);
    const edges = await waitFor(async () => {
      await tick(b);
      const now = (await stagesOf(b)).filter((s) => s.role === "edge" && s.state === "ready");
      expect(now.length).toBeGreaterThanOrEqual(2);
      expect(now.every((s) => s.replication === "active")).toBe(true);
      return now;
    }, 25_000);

    // IVS answers one replica per page; the 30 s replica check is due now.
    await paging(1);
    await runInDurableObject(env.BROADCAST.getByName(b), (_o, state) =>
      state.storage.sql.exec("UPDATE broadcast SET replicas_checked_at = 0"),
    );
    await evictAllDurableObjects();
    await tick(b);
    const after = await stagesOf(b);
    for (const edge of edges) expect(after.find((s) => s.stageArn === edge.stageArn)?.replication).toBe("active");
    publisher.close();
    await call(api(b, "/broadcast/end"), { body: {} });
  });
});

describe("replication refusals, as AWS documents them", () => {
  const edgeOf = async (b: string, edge: string) => (await stagesOf(b)).find((s) => s.stageArn === edge);

  it("a refusal AWS does not document as final (here a 402) is retried with backoff, and the replica starts", async () => {
    const b = newBroadcastId();
    await emulator.faults({
      rules: [{ operation: "StartParticipantReplication", errorType: "ServiceQuotaExceededException", times: 2 }],
    });
    const { grant, edge } = await liveWithEdge(b);
    const publisher = await publishing(b, grant);
    await replicating(b, edge);
    publisher.close();
    await call(api(b, "/broadcast/end"), { body: {} });
  });

  it("a stage that fell back to a direct feed is replicated again when a new publisher session starts, and IVS's error is logged", async () => {
    const b = newBroadcastId();
    await emulator.faults({
      rules: [{ operation: "StartParticipantReplication", errorType: "AccessDeniedException" }],
    });
    const { grant, edge } = await liveWithEdge(b);
    const first = await publishing(b, grant);
    await waitFor(async () => {
      await tick(b);
      expect(await edgeOf(b, edge)).toMatchObject({ feed: "direct", replication: "failed" });
    }, 25_000);
    const failed = data(
      await call<{ events: { type: string; detail: Record<string, unknown> }[] }>(api(b, "/events?limit=100")),
    ).events.find((e) => e.type === "replication_failed");
    expect(failed?.detail).toMatchObject({
      error: "AccessDeniedException",
      message: expect.stringContaining("Injected"),
    });

    // The operator fixes the permission; the studio stops and starts a new session.
    await emulator.clearFaults();
    await call(api(b, "/broadcaster/publish-state"), { body: { stageArn: grant.stageArn, state: "stopped" } });
    first.close();
    const second = data(await call<Token>(api(b, "/token/publisher"), { body: { userId: "host" } }));
    expect(second.participantId).not.toBe(grant.participantId);
    const publisher = await publishing(b, second);
    await replicating(b, edge);
    publisher.close();
    await call(api(b, "/broadcast/end"), { body: {} });
  });
});

describe("OBS over WHIP: a participant of its own, and its publish state from IVS", () => {
  type PublisherGrant = Token & { whipEndpoint: string; capabilities: string[]; expiresIn: number };
  const obsToken = async (b: string, participantId?: string) =>
    data(
      await call<PublisherGrant>(api(b, "/token/publisher"), {
        body: { userId: "obs", encoder: "obs", ...(participantId ? { participantId } : {}) },
      }),
    );
  const stats = async (b: string) => data(await call<{ status: string; isPublisherLive: boolean }>(api(b, "/stats")));

  it("gets a publish-only participant lasting OBS_TOKEN_MINUTES, never the studio's, and a renewal keeps it", async () => {
    const b = newBroadcastId();
    const studio = data(await call<Token>(api(b, "/token/publisher"), { body: { userId: "host" } }));
    const obs = await obsToken(b);
    expect(obs.participantId).not.toBe(studio.participantId);
    expect(obs.capabilities).toEqual(["PUBLISH"]);
    expect(obs.expiresIn).toBeGreaterThan(11 * 3600);
    expect(obs.whipEndpoint).toBe(new URL("/whip", env.IVS_ENDPOINT).href);
    const renewed = await obsToken(b, obs.participantId);
    expect(renewed.participantId).toBe(obs.participantId);
  });

  it("an OBS-style publisher feeds a broadcast no page publishes: it counts as live, and the replicas follow it", async () => {
    const b = newBroadcastId();
    const { edge } = await liveWithEdge(b);
    const obs = await obsToken(b);
    expect(await stats(b)).toMatchObject({ status: "live", isPublisherLive: false });

    // OBS connects with its token and publishes; nobody reports anything to Fanout.
    const encoder = await connectPublisher(obs.token);
    await encoder.publish();
    await waitFor(async () => {
      await tick(b);
      expect((await stats(b)).isPublisherLive).toBe(true);
    });
    await replicating(b, edge);
    const replicas = await ivs().listAllParticipantReplicas({
      sourceStageArn: obs.stageArn,
      participantId: obs.participantId,
    });
    expect(replicas).toEqual(
      expect.arrayContaining([expect.objectContaining({ destinationStageArn: edge, replicationState: "ACTIVE" })]),
    );

    // OBS stops: Fanout learns it from IVS too.
    encoder.ws.send(JSON.stringify({ type: "unpublish" }));
    await encoder.next("published");
    await waitFor(async () => {
      await tick(b);
      expect((await stats(b)).isPublisherLive).toBe(false);
    });
    encoder.close();
  });
});
