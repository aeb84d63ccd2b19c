import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { MIGRATIONS as BROADCAST_MIGRATIONS, Registry } from "../../worker/broadcast/registry.ts";
import { MIGRATIONS as SHARD_MIGRATIONS, type ShardRow } from "../../worker/shard/schema.ts";
import { migrate } from "../../worker/storage/migrations.ts";
import { StateRow } from "../../worker/storage/state-row.ts";
import { newBroadcastId } from "./support.ts";

/**
 * Objects created before typed state kept it as key/value strings in `meta`.
 * Their storage is laid out here as it was, then migrated as a restarted
 * object would: every value arrives typed, nothing is lost.
 */

/** Empties an object's SQLite database (the object itself is never called), then lays out the old schema. */
function oldStorage(sql: SqlStorage, migrations: readonly string[], done: number, meta: Record<string, string>): void {
  const tables = sql
    .exec<{ name: string }>(
      "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%'",
    )
    .toArray();
  for (const { name } of tables) sql.exec(`DROP TABLE "${name}"`);
  migrate(sql, migrations.slice(0, done));
  for (const [key, value] of Object.entries(meta)) sql.exec("INSERT INTO meta (key, value) VALUES (?, ?)", key, value);
}

describe("schema migrations", () => {
  it("run each migration once: a second pass changes nothing", async () => {
    await runInDurableObject(env.BROADCAST.getByName(newBroadcastId()), (_o, state) => {
      const sql = state.storage.sql;
      const version = () => sql.exec<{ v: number }>("SELECT MAX(version) AS v FROM _migrations").one().v;
      migrate(sql, BROADCAST_MIGRATIONS);
      expect(version()).toBe(BROADCAST_MIGRATIONS.length);
      migrate(sql, BROADCAST_MIGRATIONS);
      expect(version()).toBe(BROADCAST_MIGRATIONS.length);
    });
  });

  it("turn a broadcast's key/value strings into its typed row, and mark old placeholders by their column", async () => {
    await runInDurableObject(env.BROADCAST.getByName(newBroadcastId()), (_o, state) => {
      const sql = state.storage.sql;
      oldStorage(sql, BROADCAST_MIGRATIONS, 2, {
        broadcast_id: "old-show",
        status: "ended",
        started_at: "1700000000000",
        ended_at: "1700003600000",
        replicas_checked_at: "1700000030000",
      });
      sql.exec(
        "INSERT INTO stages (arn, role, state, feed, created_at) VALUES ('creating:abc', 'edge', 'creating', 'replica', 1), ('arn:aws:ivs:us-east-1:1:stage/x', 'origin', 'ready', 'replica', 1)",
      );
      const registry = new Registry(sql);
      expect(registry.state()).toMatchObject({
        broadcast_id: "old-show",
        status: "ended",
        started_at: 1_700_000_000_000,
        ended_at: 1_700_003_600_000,
        replicas_checked_at: 1_700_000_030_000,
      });
      expect(registry.stages().map((s) => [s.arn, s.placeholder])).toEqual([
        ["arn:aws:ivs:us-east-1:1:stage/x", 0],
        ["creating:abc", 1],
      ]);
    });
  });

  it("give a broadcast that never started an idle typed row", async () => {
    await runInDurableObject(env.BROADCAST.getByName(newBroadcastId()), (_o, state) => {
      oldStorage(state.storage.sql, BROADCAST_MIGRATIONS, 2, {});
      expect(new Registry(state.storage.sql).state()).toMatchObject({
        broadcast_id: null,
        status: "idle",
        started_at: null,
        ended_at: null,
        replicas_checked_at: 0,
      });
    });
  });

  it("turn a shard's key/value strings into its typed row", async () => {
    await runInDurableObject(env.BROADCAST.getByName(newBroadcastId()), (_o, state) => {
      const sql = state.storage.sql;
      oldStorage(sql, SHARD_MIGRATIONS, 1, {
        broadcast_id: "old-show",
        stage_arn: "arn:aws:ivs:us-east-1:1:stage/x",
        state: "draining",
        live: "1",
        audience: "42",
        migrate_to: "arn:aws:ivs:us-east-1:1:stage/y",
        admitted: "3",
        dirty: "1",
        reported_at: "1700000000000",
      });
      migrate(sql, SHARD_MIGRATIONS);
      expect(new StateRow<ShardRow>(sql, "shard").get()).toEqual({
        broadcast_id: "old-show",
        stage_arn: "arn:aws:ivs:us-east-1:1:stage/x",
        state: "draining",
        live: 1,
        audience: 42,
        migrate_to: "arn:aws:ivs:us-east-1:1:stage/y",
        admitted: 3,
        dirty: 1,
        reported_at: 1_700_000_000_000,
        // A shard from before shards per stage is its stage's only one.
        idx: 0,
        shards: 1,
      });
    });
  });
});
