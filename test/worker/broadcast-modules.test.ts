import { env, runInDurableObject } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import { Channels } from "../../worker/broadcast/channels.ts";
import { ObjectContext } from "../../worker/broadcast/context.ts";
import { StagePool } from "../../worker/broadcast/pool.ts";
import { reconcile } from "../../worker/broadcast/reconcile.ts";
import { isPendingReplica, isPlaceholder, Registry } from "../../worker/broadcast/registry.ts";
import { Replication, replicationRetry } from "../../worker/broadcast/replication.ts";
import { Views } from "../../worker/broadcast/views.ts";
import { IvsError } from "../../worker/ivs/error.ts";
import { fanoutTags } from "../../worker/ivs/tags.ts";
import { emulator, newBroadcastId } from "./support.ts";

/**
 * The Broadcast object's modules, each on its own: built over a real SQLite
 * storage inside workerd and the emulator, without the object's RPC surface.
 */

afterEach(() => emulator.clearFaults());

/** The modules of a fresh broadcast `b`, over its object's own SQLite storage (its RPC surface is never called). */
async function modules<T>(b: string, work: (m: ReturnType<typeof build>) => Promise<T>): Promise<T> {
  return runInDurableObject(env.BROADCAST.getByName(b), (_object, state) => work(build(state)));
}

function build(state: DurableObjectState) {
  const registry = new Registry(state.storage.sql);
  const context = new ObjectContext(state, env, registry);
  const views = new Views(context);
  context.channels = new Channels(
    state,
    env,
    () => views.stats(),
    () => 100,
    () => registry.relays().map((r) => r.index),
  );
  const replication = new Replication(context);
  const pool = new StagePool(context, replication);
  return { registry, context, views, replication, pool };
}

const ivsError = (type: string, status: number) => new IvsError("StartParticipantReplication", type, status, "");

describe("the replication retry rule", () => {
  it("retries any refusal for as long as it takes while the publisher is not publishing, on 1, 2, 4, 8 then every 15 seconds", () => {
    const waits = [0, 1, 2, 3, 4, 20].map((attempts) =>
      replicationRetry(ivsError("ConflictException", 409), attempts, false),
    );
    expect(waits).toEqual([1000, 2000, 4000, 8000, 15_000, 15_000].map((waitMs) => ({ retry: true, waitMs })));
    // AWS documents no error for "not publishing yet": whichever it answers is retried.
    for (const [type, status] of [
      ["ResourceNotFoundException", 404],
      ["ValidationException", 400],
      ["ServiceQuotaExceededException", 402],
      ["InternalServerException", 500],
    ] as const)
      expect(replicationRetry(ivsError(type, status), 100, false), type).toEqual({ retry: true, waitMs: 15_000 });
  });

  it("retries any refusal about two and a half minutes once the publisher publishes, then gives up (a direct feed)", () => {
    expect(replicationRetry(ivsError("ServiceQuotaExceededException", 402), 0, true)).toMatchObject({ retry: true });
    expect(replicationRetry(ivsError("ValidationException", 400), 11, true)).toMatchObject({ retry: true });
    expect(replicationRetry(ivsError("InternalServerException", 500), 12, true)).toEqual({ retry: false });
  });

  it("gives up at once on a refusal about the account itself (403: access denied, pending verification)", () => {
    expect(replicationRetry(ivsError("AccessDeniedException", 403), 0, true)).toEqual({ retry: false });
    expect(replicationRetry(ivsError("PendingVerification", 403), 0, false)).toEqual({ retry: false });
  });
});

describe("the stage pool", () => {
  it("applies the scaling decision: a full origin gets an edge stage, created at IVS with the broadcast's tags", async () => {
    const b = newBroadcastId();
    const edges = await modules(b, async ({ registry, pool }) => {
      registry.setState({ broadcast_id: b, status: "live", started_at: Date.now() });
      const origin = await pool.ensureOrigin();
      registry.updateStage(origin.arn, { viewers: 3 }); // every seat of a 3-seat stage
      await pool.apply(Date.now());
      return registry.stages().filter((s) => s.role === "edge");
    });
    expect(edges.length).toBeGreaterThanOrEqual(1);
    for (const edge of edges) expect(edge).toMatchObject({ state: "ready", placeholder: 0, replication: "pending" });
    expect(edges.every(isPendingReplica)).toBe(true);
    const atIvs = (await emulator.stagesOf(b)).map((s) => s.arn);
    for (const edge of edges) expect(atIvs).toContain(edge.arn);
  });

  it("leaves no placeholder behind when IVS refuses CreateStage", async () => {
    const b = newBroadcastId();
    await emulator.faults({ rules: [{ operation: "CreateStage", errorType: "AccessDeniedException" }] });
    const rows = await modules(b, async ({ registry, pool }) => {
      registry.setState({ broadcast_id: b, status: "live" });
      await expect(pool.ensureOrigin()).rejects.toMatchObject({ failure: { code: "IVS_REFUSED" } });
      return registry.stages();
    });
    expect(rows.filter(isPlaceholder)).toEqual([]);
  });
});

describe("reconcile", () => {
  it("deletes an orphan (tagged for this broadcast, not registered) and keeps the registered stages", async () => {
    const b = newBroadcastId();
    const ivs = (await import("../../worker/ivs/client.ts")).IvsClient;
    const client = new ivs({
      region: "us-east-1",
      endpoint: env.IVS_ENDPOINT,
      accessKeyId: env.AWS_ACCESS_KEY_ID!,
      secretAccessKey: env.AWS_SECRET_ACCESS_KEY!,
    });
    const orphan = (
      await client.createStage({ tags: fanoutTags({ broadcastId: b, role: "edge", deployment: "fanout" }) })
    ).stage;
    const outcome = await modules(b, async (m) => {
      m.registry.setState({ broadcast_id: b, status: "live" });
      const origin = await m.pool.ensureOrigin();
      const listedAt = Date.now() + 1;
      return reconcile(m.context, m.pool, m.views, {
        stages: [
          { arn: orphan.arn, tags: orphan.tags ?? {} },
          { arn: origin.arn, tags: {} },
        ],
        listedAt,
      });
    });
    expect(outcome).toEqual({ orphansDeleted: [orphan.arn], dropped: [] });
    const atIvs = (await emulator.stagesOf(b)).map((s) => s.arn);
    expect(atIvs).not.toContain(orphan.arn);
    expect(atIvs).toHaveLength(1);
  });
});
