import type { DataSource, QueryRunner } from 'typeorm';

/** Plain SQL that always answers rows (TypeORM answers UPDATE … RETURNING with [rows, count] otherwise). */
export type Sql = <T = Record<string, unknown>>(text: string, params?: unknown[]) => Promise<T[]>;

export const sqlOn =
  (runner: QueryRunner): Sql =>
  async <T>(text: string, params?: unknown[]) =>
    (await runner.query(text, params, true)).records as T[];

/** Runs `fn` on one pooled connection. */
export async function withSql<T>(db: DataSource, fn: (sql: Sql) => Promise<T>): Promise<T> {
  const runner = db.createQueryRunner();
  try {
    return await fn(sqlOn(runner));
  } finally {
    await runner.release();
  }
}

/** Runs `fn` in one transaction. */
export const inTransaction = <T>(db: DataSource, fn: (sql: Sql) => Promise<T>): Promise<T> => db.transaction((em) => fn(sqlOn(em.queryRunner!)));

/** One statement on its own connection. */
export const query = <T = Record<string, unknown>>(db: DataSource, text: string, params?: unknown[]) => withSql(db, (sql) => sql<T>(text, params));
