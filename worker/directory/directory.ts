import { DurableObject } from "cloudflare:workers";
import type { BroadcastEntry } from "../../protocol/api.ts";
import { migrate } from "../storage/migrations.ts";

/**
 * The list of broadcasts: which exist (the open routes ask before they touch
 * a Broadcast object, so a made-up id creates nothing), which are live (for
 * the cron to reconcile) and which ran recently (for the landing page).
 * Written only when the operator prepares a broadcast, it starts or ends, or a publisher token names its origin,
 * so one object serves every deployment size.
 */

const MIGRATIONS = [
  // Objects created before migrations were recorded already have this table: hence IF NOT EXISTS.
  `CREATE TABLE IF NOT EXISTS broadcasts (
     id TEXT PRIMARY KEY, status TEXT NOT NULL, started_at INTEGER NOT NULL, ended_at INTEGER, updated_at INTEGER NOT NULL
   )`,
  // Whose origin a stage is: IVS's EventBridge events name the stage, not the broadcast.
  `CREATE TABLE origins (stage_arn TEXT PRIMARY KEY, broadcast_id TEXT NOT NULL, updated_at INTEGER NOT NULL)`,
];

export class Directory extends DurableObject<Env> {
  readonly #sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#sql = ctx.storage.sql;
    migrate(this.#sql, MIGRATIONS);
  }

  record(input: { broadcastId: string; status: "live" | "ended"; startedAt: number; endedAt: number | null }): void {
    this.#sql.exec(
      `INSERT INTO broadcasts (id, status, started_at, ended_at, updated_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET status = excluded.status, started_at = excluded.started_at,
         ended_at = excluded.ended_at, updated_at = excluded.updated_at`,
      input.broadcastId,
      input.status,
      input.startedAt,
      input.endedAt,
      Date.now(),
    );
  }

  /** The operator is about to start it (a broadcaster ticket was issued): it exists, idle, until it starts. */
  prepare(input: { broadcastId: string }): void {
    const now = Date.now();
    this.#sql.exec(
      "INSERT OR IGNORE INTO broadcasts (id, status, started_at, ended_at, updated_at) VALUES (?, 'idle', ?, NULL, ?)",
      input.broadcastId,
      now,
      now,
    );
  }

  /** The broadcast publishing into `stageArn` as its origin (a publisher token was issued for it). */
  setOrigin(input: { stageArn: string; broadcastId: string }): void {
    this.#sql.exec(
      `INSERT INTO origins (stage_arn, broadcast_id, updated_at) VALUES (?, ?, ?)
       ON CONFLICT (stage_arn) DO UPDATE SET broadcast_id = excluded.broadcast_id, updated_at = excluded.updated_at`,
      input.stageArn,
      input.broadcastId,
      Date.now(),
    );
  }

  originOf(stageArn: string): string | undefined {
    return this.#sql
      .exec<{ broadcast_id: string }>("SELECT broadcast_id FROM origins WHERE stage_arn = ?", stageArn)
      .toArray()[0]?.broadcast_id;
  }

  exists(broadcastId: string): boolean {
    return this.#sql.exec("SELECT 1 FROM broadcasts WHERE id = ?", broadcastId).toArray().length > 0;
  }

  live(): string[] {
    return this.#sql
      .exec<{ id: string }>("SELECT id FROM broadcasts WHERE status = 'live'")
      .toArray()
      .map((r) => r.id);
  }

  recent(limit: number): BroadcastEntry[] {
    return this.#sql
      .exec<{ id: string; status: "live" | "ended"; started_at: number; ended_at: number | null }>(
        "SELECT * FROM broadcasts WHERE status != 'idle' ORDER BY status = 'live' DESC, started_at DESC LIMIT ?",
        limit,
      )
      .toArray()
      .map((r) => ({
        broadcastId: r.id,
        status: r.status,
        startedAt: new Date(r.started_at).toISOString(),
        endedAt: r.ended_at ? new Date(r.ended_at).toISOString() : null,
      }));
  }
}
