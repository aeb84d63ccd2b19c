/**
 * An object's own state as one typed row of one table (`id = 1`), instead of
 * a key/value table of strings: numbers stay numbers and every field has a
 * type. The object is the only writer, so the row is read once and then kept
 * in memory, written through on every change.
 */
export class StateRow<T extends Record<string, SqlStorageValue>> {
  readonly #sql: SqlStorage;
  readonly #table: string;
  #row: T | undefined;

  /** `table` must have `id INTEGER PRIMARY KEY CHECK (id = 1)` and a default for every other column. */
  constructor(sql: SqlStorage, table: string) {
    this.#sql = sql;
    this.#table = table;
  }

  get(): Readonly<T> {
    if (!this.#row) {
      this.#sql.exec(`INSERT OR IGNORE INTO ${this.#table} (id) VALUES (1)`);
      const { id: _id, ...row } = this.#sql.exec<T & { id: number }>(`SELECT * FROM ${this.#table} WHERE id = 1`).one();
      this.#row = row as unknown as T;
    }
    return this.#row;
  }

  set(fields: Partial<T>): void {
    const entries = Object.entries(fields).filter(([, v]) => v !== undefined);
    if (entries.length === 0) return;
    this.get();
    this.#sql.exec(
      `UPDATE ${this.#table} SET ${entries.map(([k]) => `${k} = ?`).join(", ")} WHERE id = 1`,
      ...entries.map(([, v]) => v as SqlStorageValue),
    );
    this.#row = { ...this.#row!, ...fields };
  }
}
