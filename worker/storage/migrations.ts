/**
 * Schema migrations for the Durable Objects' SQLite storage, one mechanism
 * for every object: an object lists its migrations in order and runs the
 * ones it has not run yet from its constructor. Each migration runs once, and
 * the version is recorded with it. A migration is never edited once shipped:
 * objects in production already ran it. Append a new one instead.
 */
export function migrate(sql: SqlStorage, migrations: readonly string[]): void {
  sql.exec("CREATE TABLE IF NOT EXISTS _migrations (version INTEGER PRIMARY KEY)");
  const done = sql.exec<{ v: number | null }>("SELECT MAX(version) AS v FROM _migrations").one().v ?? 0;
  migrations.slice(done).forEach((statement, i) => {
    sql.exec(statement);
    sql.exec("INSERT INTO _migrations (version) VALUES (?)", done + i + 1);
  });
}
