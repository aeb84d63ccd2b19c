import { base64url, tokenDigest } from "../tokens/proof.ts";

/**
 * Broadcaster tickets: how a browser (the studio, the dashboard) opens a socket with the
 * operator's rights without the admin key in a URL. `POST /api/broadcaster/ticket` (admin key
 * in a header) asks for one; the socket's first message carries it (never the URL, which
 * Workers logs record); it is good for TICKET_SECONDS and redeemed once. The broadcast keeps
 * only the ticket's digest.
 */

export const TICKET_SECONDS = 30;

export class Tickets {
  readonly #sql: SqlStorage;

  constructor(sql: SqlStorage) {
    this.#sql = sql;
  }

  async issue(now = Date.now()): Promise<{ ticket: string; expiresIn: number }> {
    this.#sql.exec("DELETE FROM tickets WHERE expires_at <= ?", now);
    const ticket = base64url(crypto.getRandomValues(new Uint8Array(32)));
    this.#sql.exec(
      "INSERT INTO tickets (digest, expires_at) VALUES (?, ?)",
      await tokenDigest(ticket),
      now + TICKET_SECONDS * 1000,
    );
    return { ticket, expiresIn: TICKET_SECONDS };
  }

  /** True once per ticket, while it is good; a used, expired or unknown ticket is false. */
  async redeem(ticket: string, now = Date.now()): Promise<boolean> {
    const { rowsWritten } = this.#sql.exec(
      "DELETE FROM tickets WHERE digest = ? AND expires_at > ?",
      await tokenDigest(ticket),
      now,
    );
    return rowsWritten > 0;
  }
}
