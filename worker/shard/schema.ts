/**
 * The StageShard's SQLite schema: its migrations (run by the shared mechanism
 * in worker/storage/migrations.ts) and the type of its state row.
 */

export type ShardState = "ready" | "draining" | "closed";

/** The shard's own state: one typed row (see StateRow). */
export type ShardRow = {
  broadcast_id: string | null;
  stage_arn: string | null;
  state: ShardState;
  /** 1 while the broadcaster is live, as the broadcast last said. */
  live: number;
  /** The broadcast's total audience, as the broadcast last said (null: not told yet). */
  audience: number | null;
  migrate_to: string | null;
  /** Admissions since the last load report. */
  admitted: number;
  /** 1 when something changed since the last load report. */
  dirty: number;
  reported_at: number | null;
  /** Which of its stage's shards this is (0: the head, shard/admission.ts), of how many. */
  idx: number;
  shards: number;
};

export const MIGRATIONS = [
  // Objects created before migrations were recorded already have these tables: hence IF NOT EXISTS.
  `CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
   CREATE TABLE IF NOT EXISTS viewers (
     participant_id TEXT PRIMARY KEY,
     user_id TEXT NOT NULL,
     joined_at INTEGER NOT NULL,
     last_seen INTEGER NOT NULL,
     connected INTEGER NOT NULL DEFAULT 0
   );
   CREATE INDEX IF NOT EXISTS viewers_by_user ON viewers (user_id);
   CREATE TABLE IF NOT EXISTS ended (
     participant_id TEXT NOT NULL,
     user_id TEXT NOT NULL,
     joined_at INTEGER NOT NULL,
     left_at INTEGER NOT NULL,
     reason TEXT NOT NULL
   );`,
  // Typed state: the key/value strings become one typed row.
  `CREATE TABLE shard (
     id INTEGER PRIMARY KEY CHECK (id = 1),
     broadcast_id TEXT,
     stage_arn TEXT,
     state TEXT NOT NULL DEFAULT 'ready',
     live INTEGER NOT NULL DEFAULT 0,
     audience INTEGER,
     migrate_to TEXT,
     admitted INTEGER NOT NULL DEFAULT 0,
     dirty INTEGER NOT NULL DEFAULT 0,
     reported_at INTEGER
   );
   INSERT INTO shard (id, broadcast_id, stage_arn, state, live, audience, migrate_to, admitted, dirty, reported_at) VALUES (1,
     (SELECT value FROM meta WHERE key = 'broadcast_id'),
     (SELECT value FROM meta WHERE key = 'stage_arn'),
     COALESCE((SELECT value FROM meta WHERE key = 'state'), 'ready'),
     COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'live'), 0),
     (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'audience'),
     (SELECT value FROM meta WHERE key = 'migrate_to'),
     COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'admitted'), 0),
     COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'dirty'), 0),
     (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'reported_at'));
   DROP TABLE meta;`,
  // Proof of identity: the digest of every token the shard issued, until it expires.
  `CREATE TABLE grants (
     digest TEXT PRIMARY KEY,
     participant_id TEXT NOT NULL,
     user_id TEXT NOT NULL,
     expires_at INTEGER NOT NULL
   );
   CREATE INDEX grants_by_expiry ON grants (expires_at);`,
  // A draining stage tells each HTTP viewer where to go once with a token for it; later heartbeats just repeat where.
  `ALTER TABLE viewers ADD COLUMN told INTEGER NOT NULL DEFAULT 0`,
  // A stage's seats over several shards: which one this is; the head keeps the others' last reports.
  `ALTER TABLE shard ADD COLUMN idx INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE shard ADD COLUMN shards INTEGER NOT NULL DEFAULT 1;
   CREATE TABLE parts (
     idx INTEGER PRIMARY KEY,
     viewers INTEGER NOT NULL,
     join_rate REAL NOT NULL,
     reported_at INTEGER NOT NULL
   );`,
];
