import type { Grant } from "../tokens/proof.ts";

/**
 * The tokens a shard handed out (as digests), per participant and user: the
 * proof a renewal, heartbeat, leave, rejoin or viewer socket must carry. A
 * grant outlives the viewer's session (a swept viewer can still rejoin as
 * itself) until its token expires; a renewal adds the new token's grant and
 * the old one keeps proving until it expires too (the client may not have
 * received the new one).
 */
export class Grants {
  readonly #sql: SqlStorage;

  constructor(sql: SqlStorage) {
    this.#sql = sql;
  }

  record(participantId: string, userId: string, grant: Grant): void {
    this.#sql.exec(
      "INSERT OR REPLACE INTO grants (digest, participant_id, user_id, expires_at) VALUES (?, ?, ?, ?)",
      grant.digest,
      participantId,
      userId,
      grant.expiresAt,
    );
  }

  /** Whether `digest` is a live token this shard issued to that participant for that user. */
  proves(input: { participantId: string; userId?: string; proof: string }, now = Date.now()): boolean {
    const row = this.#sql
      .exec<{ user_id: string }>(
        "SELECT user_id FROM grants WHERE digest = ? AND participant_id = ? AND expires_at > ?",
        input.proof,
        input.participantId,
        now,
      )
      .toArray()[0];
    return row !== undefined && (input.userId === undefined || row.user_id === input.userId);
  }

  prune(now = Date.now()): void {
    this.#sql.exec("DELETE FROM grants WHERE expires_at <= ?", now);
  }
}
