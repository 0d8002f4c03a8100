import { DataSource } from 'typeorm';
import { ENTITIES } from './entities.js';
import { NotifierInit1732350000000 } from './1732350000000-notifier-init.js';

/** Arbitrary but fixed: only one notifier instance migrates at a time. */
const MIGRATION_LOCK = 7_103_001;

export function notifierDataSource(url: string): DataSource {
  return new DataSource({
    type: 'postgres',
    url,
    entities: ENTITIES,
    migrations: [NotifierInit1732350000000],
    migrationsTableName: 'notifier_migrations',
    synchronize: false,
    logging: false,
    extra: { max: 20, connectionTimeoutMillis: 10_000 },
  });
}

/** Connects and runs pending migrations under an advisory lock, so concurrent starts do not race. */
export async function openDatabase(url: string): Promise<DataSource> {
  const ds = await notifierDataSource(url).initialize();
  const runner = ds.createQueryRunner();
  try {
    await runner.connect();
    await runner.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    try {
      await ds.runMigrations({ transaction: 'each' });
    } finally {
      await runner.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]);
    }
  } catch (e) {
    await runner.release();
    await ds.destroy();
    throw e;
  }
  await runner.release();
  return ds;
}
