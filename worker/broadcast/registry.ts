import {
  isServing,
  type EventDetail,
  type EventType,
  type Feed,
  type PublishState,
  type StageState,
} from "../../protocol/api.ts";
import { migrate } from "../storage/migrations.ts";
import { StateRow } from "../storage/state-row.ts";
import type { BroadcastStatus } from "./contract.ts";

/**
 * The Broadcast object's SQLite tables and typed access to them. The object
 * is their only writer, so the stage rows are kept in memory between writes:
 * a tick reads them as often as it likes for one query.
 */

export const MIGRATIONS = [
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
  // Typed state: the key/value strings become one typed row; placeholders get a column of their own.
  `CREATE TABLE broadcast (
     id INTEGER PRIMARY KEY CHECK (id = 1),
     broadcast_id TEXT,
     status TEXT NOT NULL DEFAULT 'idle',
     started_at INTEGER,
     ended_at INTEGER,
     replicas_checked_at INTEGER NOT NULL DEFAULT 0
   );
   INSERT INTO broadcast (id, broadcast_id, status, started_at, ended_at, replicas_checked_at) VALUES (1,
     (SELECT value FROM meta WHERE key = 'broadcast_id'),
     COALESCE((SELECT value FROM meta WHERE key = 'status'), 'idle'),
     (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'started_at'),
     (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'ended_at'),
     COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'replicas_checked_at'), 0));
   DROP TABLE meta;
   ALTER TABLE stages ADD COLUMN placeholder INTEGER NOT NULL DEFAULT 0;
   UPDATE stages SET placeholder = 1 WHERE arn LIKE 'creating:%';`,
  // Broadcaster tickets (tickets.ts): digests only, each redeemed once.
  `CREATE TABLE tickets (digest TEXT PRIMARY KEY, expires_at INTEGER NOT NULL);`,
  // Faults and cost: deletions retried on a schedule, orphans adopted for deletion, stage
  // creation backed off after a refusal, participant time accrued for the dashboard.
  `ALTER TABLE stages ADD COLUMN delete_attempts INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE stages ADD COLUMN delete_next_at INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE stages ADD COLUMN delete_error TEXT;
   ALTER TABLE stages ADD COLUMN orphan INTEGER NOT NULL DEFAULT 0;
   UPDATE stages SET delete_next_at = 0 WHERE state = 'deleting';
   ALTER TABLE broadcast ADD COLUMN create_blocked_until INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE broadcast ADD COLUMN create_failures INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE broadcast ADD COLUMN create_refusal TEXT;
   ALTER TABLE broadcast ADD COLUMN create_refused_since INTEGER;
   ALTER TABLE broadcast ADD COLUMN viewer_ms REAL NOT NULL DEFAULT 0;
   ALTER TABLE broadcast ADD COLUMN publisher_ms REAL NOT NULL DEFAULT 0;
   ALTER TABLE broadcast ADD COLUMN replica_ms REAL NOT NULL DEFAULT 0;
   ALTER TABLE broadcast ADD COLUMN accrued_at INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE broadcast ADD COLUMN peak_stages INTEGER NOT NULL DEFAULT 0;`,
  // 6: the publisher's encoder (an OBS participant's publish state is asked of IVS) and when it was last asked.
  `ALTER TABLE publisher ADD COLUMN encoder TEXT NOT NULL DEFAULT 'studio';
   ALTER TABLE publisher ADD COLUMN checked_at INTEGER NOT NULL DEFAULT 0;`,
  // 7: stages this broadcast had (a viewer asleep through a deletion is moved, not refused); the
  // publisher's state as IVS's events (EventBridge) last told it, and the events already applied.
  `CREATE TABLE past_stages (arn TEXT PRIMARY KEY, removed_at INTEGER NOT NULL);
   ALTER TABLE publisher ADD COLUMN event_at INTEGER NOT NULL DEFAULT 0;
   CREATE TABLE ivs_events (id TEXT PRIMARY KEY, at INTEGER NOT NULL);`,
  // 8: the relays holding this broadcast's stats sockets, and how many each holds (stats-relay.ts).
  `CREATE TABLE stats_relays (idx INTEGER PRIMARY KEY, sockets INTEGER NOT NULL, reported_at INTEGER NOT NULL);`,
  // 9: a crowd the operator announced (POST /crowd): its arrival rate counts until it is due to be in.
  `ALTER TABLE broadcast ADD COLUMN crowd_rate REAL NOT NULL DEFAULT 0;
   ALTER TABLE broadcast ADD COLUMN crowd_viewers INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE broadcast ADD COLUMN crowd_until INTEGER NOT NULL DEFAULT 0;`,
  // 10: the shards a stage's seats are spread over (shard/admission.ts), kept with the stages it had too.
  `ALTER TABLE stages ADD COLUMN shards INTEGER NOT NULL DEFAULT 1;
   ALTER TABLE past_stages ADD COLUMN shards INTEGER NOT NULL DEFAULT 1;`,
];

/** How long a deleted stage is remembered, and an applied IVS event's id kept (EventBridge retries for hours). */
const PAST_MS = 86_400_000;

export type BroadcastState = {
  broadcast_id: string | null;
  status: BroadcastStatus;
  started_at: number | null;
  ended_at: number | null;
  replicas_checked_at: number;
  /** No CreateStage before this (ms): IVS refused the last one (quota, throttling, failure). */
  create_blocked_until: number;
  /** Refusals in a row, for the backoff. */
  create_failures: number;
  /** Why the last CreateStage was refused: an IvsErrorKind ("quota", "throttled", ...), null once one succeeds. */
  create_refusal: string | null;
  create_refused_since: number | null;
  /** Participant time accrued up to `accrued_at` (usage.ts). */
  viewer_ms: number;
  publisher_ms: number;
  replica_ms: number;
  accrued_at: number;
  peak_stages: number;
  /** An announced crowd (POST /crowd): viewers a second expected until `crowd_until` (ms), and how many. */
  crowd_rate: number;
  crowd_viewers: number;
  crowd_until: number;
};

export type Replication = "none" | "pending" | "active" | "failed";

export type StageRow = {
  /** The stage's ARN; for a placeholder, a random key until CreateStage answers. */
  arn: string;
  role: "origin" | "edge";
  state: StageState;
  feed: Feed;
  /** 1 when Fanout created the stage (and so deletes it); 0 for MASTER_STAGE_ARN. */
  owned: number;
  /** 1 while CreateStage is under way: counted by the scaling policy, never handed out. */
  placeholder: number;
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
  /** Deleting: tries so far, when the next is due, the last error. */
  delete_attempts: number;
  delete_next_at: number;
  delete_error: string | null;
  /** 1 for a stage IVS had with this broadcast's tags that Fanout had not registered: adopted to be deleted. */
  orphan: number;
  /** The shards its seats are spread over (shard/admission.ts). */
  shards: number;
};

export type PublisherRow = {
  participant_id: string;
  user_id: string;
  stage_arn: string;
  state: PublishState | "idle";
  since: number;
  expires_at: number;
  /**
   * Who publishes: the studio page (it reports its publish state on the
   * broadcaster socket) or an encoder such as OBS over WHIP, with its own
   * participant, whose state Fanout asks IVS for.
   */
  encoder: Encoder;
  /** When IVS was last asked for the publisher's state (ms). */
  checked_at: number;
  /** The time of the last IVS event (EventBridge) applied to its state (ms; 0: none yet). */
  event_at: number;
};

export type Encoder = "studio" | "obs";

// ── what a stage row is, named once ─────────────────────────────────────────

export const isPlaceholder = (stage: StageRow): boolean => stage.placeholder === 1;
/** Real, and not on its way out: it counts against the maximum and the audience. */
export const isActive = (stage: StageRow): boolean => stage.state !== "deleting";
/** An edge stage fed by replication that is still waiting for it to start. */
export const isPendingReplica = (stage: StageRow): boolean =>
  stage.role === "edge" && stage.feed === "replica" && stage.replication === "pending" && isServing(stage);
/** A stage the studio publishes into itself: the origin, and any direct-fed edge. */
export const isPublishedDirectly = (stage: StageRow): boolean =>
  isServing(stage) && (stage.role === "origin" || stage.feed === "direct");

export class Registry {
  readonly #sql: SqlStorage;
  readonly #state: StateRow<BroadcastState>;
  #stages: StageRow[] | undefined;

  constructor(sql: SqlStorage) {
    this.#sql = sql;
    migrate(sql, MIGRATIONS);
    this.#state = new StateRow<BroadcastState>(sql, "broadcast");
  }

  // ── the broadcast's own state ─────────────────────────────────────────────

  state(): Readonly<BroadcastState> {
    return this.#state.get();
  }

  setState(fields: Partial<BroadcastState>): void {
    this.#state.set(fields);
  }

  // ── stages ──────────────────────────────────────────────────────────────

  /** Every stage row, placeholders included, oldest first. */
  stages(): readonly StageRow[] {
    this.#stages ??= this.#sql.exec<StageRow>("SELECT * FROM stages ORDER BY created_at, arn").toArray();
    return this.#stages;
  }

  /** Stages that exist at IVS (no placeholders). */
  realStages(): StageRow[] {
    return this.stages().filter((s) => !isPlaceholder(s));
  }

  stage(arn: string): StageRow | undefined {
    return this.stages().find((s) => s.arn === arn);
  }

  /** Live, with the publisher publishing: what viewers see as "live". */
  publisherLive(): boolean {
    return this.state().status === "live" && this.publisher()?.state === "publishing";
  }

  origin(): StageRow | undefined {
    return this.stages().find((s) => s.role === "origin" && isActive(s) && !isPlaceholder(s));
  }

  insertStage(
    row: Pick<StageRow, "arn" | "role" | "state" | "feed" | "owned" | "events_url" | "whip_url" | "created_at"> &
      Partial<Pick<StageRow, "placeholder" | "orphan" | "shards">>,
  ): void {
    this.#sql.exec(
      `INSERT INTO stages (arn, role, state, feed, owned, placeholder, orphan, events_url, whip_url, created_at, shards) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      row.arn,
      row.role,
      row.state,
      row.feed,
      row.owned,
      row.placeholder ?? 0,
      row.orphan ?? 0,
      row.events_url,
      row.whip_url,
      row.created_at,
      row.shards ?? 1,
    );
    this.#stages = undefined;
  }

  updateStage(arn: string, fields: Partial<Omit<StageRow, "arn">>): void {
    const entries = Object.entries(fields);
    if (entries.length === 0) return;
    this.#sql.exec(
      `UPDATE stages SET ${entries.map(([k]) => `${k} = ?`).join(", ")} WHERE arn = ?`,
      ...entries.map(([, v]) => v as SqlStorageValue),
      arn,
    );
    this.#stages = undefined;
  }

  removeStage(arn: string): void {
    const row = this.stage(arn);
    this.#sql.exec("DELETE FROM stages WHERE arn = ?", arn);
    this.#stages = undefined;
    if (!row || row.placeholder === 1) return;
    const now = Date.now();
    this.#sql.exec(
      "INSERT OR REPLACE INTO past_stages (arn, removed_at, shards) VALUES (?, ?, ?)",
      arn,
      now,
      row.shards,
    );
    this.#sql.exec("DELETE FROM past_stages WHERE removed_at < ?", now - PAST_MS);
  }

  /** Whether `arn` was one of this broadcast's stages lately (and is no more): its shard count, 0 if not. */
  hadStage(arn: string): number {
    return (
      this.#sql.exec<{ shards: number }>("SELECT shards FROM past_stages WHERE arn = ?", arn).toArray()[0]?.shards ?? 0
    );
  }

  // ── the stats relays ──────────────────────────────────────────────────────

  /** A relay's socket count (stats-relay.ts); a relay with none is forgotten: nothing is pushed to it any more. */
  relayLoad(index: number, sockets: number, now: number): void {
    if (sockets === 0) this.#sql.exec("DELETE FROM stats_relays WHERE idx = ?", index);
    else
      this.#sql.exec(
        "INSERT OR REPLACE INTO stats_relays (idx, sockets, reported_at) VALUES (?, ?, ?)",
        index,
        sockets,
        now,
      );
  }

  relays(): { index: number; sockets: number }[] {
    return this.#sql
      .exec<{ idx: number; sockets: number }>("SELECT idx, sockets FROM stats_relays ORDER BY idx")
      .toArray()
      .map((r) => ({ index: r.idx, sockets: r.sockets }));
  }

  // ── the publisher ─────────────────────────────────────────────────────────

  publisher(): PublisherRow | undefined {
    return this.#sql.exec<PublisherRow>("SELECT * FROM publisher WHERE id = 1").toArray()[0];
  }

  setPublisher(row: PublisherRow): void {
    this.#sql.exec(
      `INSERT INTO publisher (id, participant_id, user_id, stage_arn, state, since, expires_at, encoder, checked_at, event_at)
         VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET participant_id = excluded.participant_id, user_id = excluded.user_id,
         stage_arn = excluded.stage_arn, state = excluded.state, since = excluded.since, expires_at = excluded.expires_at,
         encoder = excluded.encoder, checked_at = excluded.checked_at, event_at = excluded.event_at`,
      row.participant_id,
      row.user_id,
      row.stage_arn,
      row.state,
      row.since,
      row.expires_at,
      row.encoder,
      row.checked_at,
      row.event_at,
    );
  }

  setPublisherChecked(at: number): void {
    this.#sql.exec("UPDATE publisher SET checked_at = ? WHERE id = 1", at);
  }

  setPublisherEventAt(at: number): void {
    this.#sql.exec("UPDATE publisher SET event_at = ? WHERE id = 1", at);
  }

  /** Records an IVS event's id; false when it was applied already (EventBridge delivers at least once). */
  rememberEvent(id: string, now: number): boolean {
    this.#sql.exec("DELETE FROM ivs_events WHERE at < ?", now - PAST_MS);
    return this.#sql.exec("INSERT OR IGNORE INTO ivs_events (id, at) VALUES (?, ?)", id, now).rowsWritten > 0;
  }

  setPublisherState(state: PublisherRow["state"], at: number): void {
    this.#sql.exec("UPDATE publisher SET state = ?, since = ? WHERE id = 1", state, at);
  }

  // ── the event log ─────────────────────────────────────────────────────────

  event(type: EventType, detail: EventDetail, at = Date.now()): void {
    this.#sql.exec("INSERT INTO events (at, type, detail) VALUES (?, ?, ?)", at, type, JSON.stringify(detail));
  }

  events(limit: number): { at: string; type: EventType; detail: EventDetail }[] {
    return this.#sql
      .exec<{ at: number; type: EventType; detail: string }>(
        "SELECT at, type, detail FROM events ORDER BY id DESC LIMIT ?",
        limit,
      )
      .toArray()
      .map((e) => ({ at: iso(e.at), type: e.type, detail: JSON.parse(e.detail) as EventDetail }));
  }

  // ── viewing history and snapshots ─────────────────────────────────────────

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
        at: iso(s.at),
        totalViewers: s.total_viewers,
        activeStages: s.active_stages,
        publisherLive: s.publisher_live === 1,
      }));
  }

  /**
   * Drops history older than the retention period. A broadcast that ended before it also
   * forgets its publisher (a user id): nothing personal outlives the retention period.
   */
  prune(before: number): number {
    let dropped = 0;
    dropped += this.#sql.exec("DELETE FROM snapshots WHERE at < ?", before).rowsWritten;
    dropped += this.#sql.exec("DELETE FROM viewing_sessions WHERE left_at < ?", before).rowsWritten;
    dropped += this.#sql.exec("DELETE FROM events WHERE at < ?", before).rowsWritten;
    const { status, ended_at } = this.state();
    if (status === "ended" && ended_at !== null && ended_at < before)
      dropped += this.#sql.exec("DELETE FROM publisher").rowsWritten;
    return dropped;
  }

  /** When the oldest piece of history was written (ms), or undefined when there is none. */
  oldestHistory(): number | undefined {
    const row = this.#sql
      .exec<{ at: number | null }>(
        `SELECT MIN(at) AS at FROM (SELECT MIN(at) AS at FROM snapshots UNION ALL SELECT MIN(left_at) FROM viewing_sessions
           UNION ALL SELECT MIN(at) FROM events UNION ALL SELECT since FROM publisher)`,
      )
      .one();
    return row.at ?? undefined;
  }
}

export const iso = (ms: number) => new Date(ms).toISOString();
