import type { Feed, PublishState, StageState } from "../../protocol/api.ts";

/**
 * The Broadcast DO's SQLite tables and typed access to them. Schema changes
 * are migrations appended to MIGRATIONS; the object runs the ones it has not
 * run yet in its constructor.
 */

const MIGRATIONS: string[] = [
  `CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
   CREATE TABLE stages (
     arn TEXT PRIMARY KEY,
     role TEXT NOT NULL,
     state TEXT NOT NULL,
     feed TEXT NOT NULL,
     owned INTEGER NOT NULL DEFAULT 1,
     events_url TEXT NOT NULL DEFAULT '',
     whip_url TEXT NOT NULL DEFAULT '',
     created_at INTEGER NOT NULL,
     draining_since INTEGER,
     viewers INTEGER NOT NULL DEFAULT 0,
     publish_state TEXT,
     replication TEXT NOT NULL DEFAULT 'none',
     replication_attempts INTEGER NOT NULL DEFAULT 0,
     replication_next_at INTEGER NOT NULL DEFAULT 0,
     replication_error TEXT
   );
   CREATE TABLE publisher (
     id INTEGER PRIMARY KEY CHECK (id = 1),
     participant_id TEXT NOT NULL,
     user_id TEXT NOT NULL,
     stage_arn TEXT NOT NULL,
     state TEXT NOT NULL,
     since INTEGER NOT NULL,
     expires_at INTEGER NOT NULL
   );
   CREATE TABLE viewing_sessions (
     participant_id TEXT PRIMARY KEY,
     user_id TEXT NOT NULL,
     stage_arn TEXT NOT NULL,
     joined_at INTEGER NOT NULL,
     left_at INTEGER NOT NULL,
     reason TEXT NOT NULL
   );
   CREATE INDEX viewing_by_user ON viewing_sessions (user_id, joined_at);
   CREATE INDEX viewing_by_stage ON viewing_sessions (stage_arn, left_at);
   CREATE TABLE snapshots (at INTEGER PRIMARY KEY, total_viewers INTEGER NOT NULL, active_stages INTEGER NOT NULL, publisher_live INTEGER NOT NULL);
   CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, type TEXT NOT NULL, detail TEXT NOT NULL);
   CREATE INDEX events_by_time ON events (at);`,
  `ALTER TABLE stages ADD COLUMN join_rate REAL NOT NULL DEFAULT 0;
   ALTER TABLE stages ADD COLUMN load_reported_at INTEGER NOT NULL DEFAULT 0;`,
];

export function migrate(sql: SqlStorage): void {
  sql.exec("CREATE TABLE IF NOT EXISTS _migrations (version INTEGER PRIMARY KEY)");
  const done = sql.exec<{ v: number | null }>("SELECT MAX(version) AS v FROM _migrations").one().v ?? 0;
  MIGRATIONS.slice(done).forEach((statement, i) => {
    sql.exec(statement);
    sql.exec("INSERT INTO _migrations (version) VALUES (?)", done + i + 1);
  });
}

/** Event details: flat and JSON-safe, so they cross RPC and the API as they are. */
export type EventDetail = Record<string, string | number | boolean | null>;

export type Replication = "none" | "pending" | "active" | "failed";

export type StageRow = {
  arn: string;
  role: "origin" | "edge";
  state: StageState;
  feed: Feed;
  owned: number;
  events_url: string;
  whip_url: string;
  created_at: number;
  draining_since: number | null;
  viewers: number;
  publish_state: PublishState | null;
  replication: Replication;
  replication_attempts: number;
  replication_next_at: number;
  replication_error: string | null;
  join_rate: number;
  load_reported_at: number;
};

export type PublisherRow = {
  participant_id: string;
  user_id: string;
  stage_arn: string;
  state: PublishState | "idle";
  since: number;
  expires_at: number;
};

export class Registry {
  readonly #sql: SqlStorage;

  constructor(sql: SqlStorage) {
    this.#sql = sql;
    migrate(sql);
  }

  get(key: string): string | undefined {
    return this.#sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = ?", key).toArray()[0]?.value;
  }

  set(key: string, value: string | null): void {
    if (value === null) this.#sql.exec("DELETE FROM meta WHERE key = ?", key);
    else
      this.#sql.exec(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        key,
        value,
      );
  }

  stages(): StageRow[] {
    return this.#sql.exec<StageRow>("SELECT * FROM stages ORDER BY created_at, arn").toArray();
  }

  stage(arn: string): StageRow | undefined {
    return this.#sql.exec<StageRow>("SELECT * FROM stages WHERE arn = ?", arn).toArray()[0];
  }

  origin(): StageRow | undefined {
    return this.#sql.exec<StageRow>("SELECT * FROM stages WHERE role = 'origin' AND state != 'deleting'").toArray()[0];
  }

  insertStage(
    row: Pick<StageRow, "arn" | "role" | "state" | "feed" | "owned" | "events_url" | "whip_url" | "created_at">,
  ): void {
    this.#sql.exec(
      `INSERT INTO stages (arn, role, state, feed, owned, events_url, whip_url, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      row.arn,
      row.role,
      row.state,
      row.feed,
      row.owned,
      row.events_url,
      row.whip_url,
      row.created_at,
    );
  }

  updateStage(arn: string, fields: Partial<Omit<StageRow, "arn">>): void {
    const entries = Object.entries(fields);
    if (entries.length === 0) return;
    this.#sql.exec(
      `UPDATE stages SET ${entries.map(([k]) => `${k} = ?`).join(", ")} WHERE arn = ?`,
      ...entries.map(([, v]) => v as SqlStorageValue),
      arn,
    );
  }

  removeStage(arn: string): void {
    this.#sql.exec("DELETE FROM stages WHERE arn = ?", arn);
  }

  publisher(): PublisherRow | undefined {
    return this.#sql.exec<PublisherRow>("SELECT * FROM publisher WHERE id = 1").toArray()[0];
  }

  setPublisher(row: PublisherRow): void {
    this.#sql.exec(
      `INSERT INTO publisher (id, participant_id, user_id, stage_arn, state, since, expires_at) VALUES (1, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET participant_id = excluded.participant_id, user_id = excluded.user_id,
         stage_arn = excluded.stage_arn, state = excluded.state, since = excluded.since, expires_at = excluded.expires_at`,
      row.participant_id,
      row.user_id,
      row.stage_arn,
      row.state,
      row.since,
      row.expires_at,
    );
  }

  setPublisherState(state: PublisherRow["state"], at: number): void {
    this.#sql.exec("UPDATE publisher SET state = ?, since = ? WHERE id = 1", state, at);
  }

  event(type: string, detail: EventDetail, at = Date.now()): void {
    this.#sql.exec("INSERT INTO events (at, type, detail) VALUES (?, ?, ?)", at, type, JSON.stringify(detail));
  }

  events(limit: number): { at: string; type: string; detail: EventDetail }[] {
    return this.#sql
      .exec<{ at: number; type: string; detail: string }>(
        "SELECT at, type, detail FROM events ORDER BY id DESC LIMIT ?",
        limit,
      )
      .toArray()
      .map((e) => ({
        at: new Date(e.at).toISOString(),
        type: e.type,
        detail: JSON.parse(e.detail) as EventDetail,
      }));
  }

  recordSessions(
    stageArn: string,
    sessions: readonly { participantId: string; userId: string; joinedAt: number; leftAt: number; reason: string }[],
  ): void {
    for (const s of sessions) {
      this.#sql.exec(
        `INSERT INTO viewing_sessions (participant_id, user_id, stage_arn, joined_at, left_at, reason) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (participant_id) DO UPDATE SET left_at = excluded.left_at, reason = excluded.reason`,
        s.participantId,
        s.userId,
        stageArn,
        s.joinedAt,
        s.leftAt,
        s.reason,
      );
    }
  }

  sessionsOf(userId: string, limit = 200) {
    return this.#sql
      .exec<{ participant_id: string; stage_arn: string; joined_at: number; left_at: number; reason: string }>(
        "SELECT * FROM viewing_sessions WHERE user_id = ? ORDER BY joined_at DESC LIMIT ?",
        userId,
        limit,
      )
      .toArray();
  }

  stageSessionsSince(stageArn: string, since: number) {
    return this.#sql
      .exec<{ user_id: string; joined_at: number; left_at: number }>(
        "SELECT user_id, joined_at, left_at FROM viewing_sessions WHERE stage_arn = ? AND left_at >= ?",
        stageArn,
        since,
      )
      .toArray();
  }

  snapshot(at: number, totalViewers: number, activeStages: number, publisherLive: boolean): void {
    this.#sql.exec(
      "INSERT OR REPLACE INTO snapshots (at, total_viewers, active_stages, publisher_live) VALUES (?, ?, ?, ?)",
      at,
      totalViewers,
      activeStages,
      publisherLive ? 1 : 0,
    );
  }

  lastSnapshotAt(): number {
    return this.#sql.exec<{ at: number | null }>("SELECT MAX(at) AS at FROM snapshots").one().at ?? 0;
  }

  snapshots(since: number) {
    return this.#sql
      .exec<{ at: number; total_viewers: number; active_stages: number; publisher_live: number }>(
        "SELECT * FROM snapshots WHERE at >= ? ORDER BY at",
        since,
      )
      .toArray()
      .map((s) => ({
        at: new Date(s.at).toISOString(),
        totalViewers: s.total_viewers,
        activeStages: s.active_stages,
        publisherLive: s.publisher_live === 1,
      }));
  }

  /** Drops history older than the retention period. */
  prune(before: number): void {
    this.#sql.exec("DELETE FROM snapshots WHERE at < ?", before);
    this.#sql.exec("DELETE FROM viewing_sessions WHERE left_at < ?", before);
    this.#sql.exec("DELETE FROM events WHERE at < ?", before);
  }
}
