import { DataSource } from 'typeorm';
import { ENTITIES } from './entities.js';
import { RegistryInit1732350000000 } from './migrations/1732350000000-registry-init.js';
import { NodeReportedInventory1764100000000 } from './migrations/1764100000000-node-reported-inventory.js';

// One advisory-lock key for registry migrations, so several instances starting together migrate once.
const MIGRATION_LOCK = 7_101_001;

/** Connects and brings the registry schema up to date under pg_advisory_lock. */
export async function openDatabase(url: string): Promise<DataSource> {
  const ds = new DataSource({
    type: 'postgres',
    url,
    entities: ENTITIES,
    migrations: [RegistryInit1732350000000, NodeReportedInventory1764100000000],
    migrationsTableName: 'registry_migrations',
    synchronize: false,
    logging: false,
    extra: { max: 10 },
  });
  await ds.initialize();
  const lock = ds.createQueryRunner();
  try {
    await lock.connect();
    await lock.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    await ds.runMigrations({ transaction: 'all' });
  } finally {
    await lock.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => undefined);
    await lock.release();
  }
  return ds;
}
