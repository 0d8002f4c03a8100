import { DataSource } from 'typeorm';
import { PG_CONNECT_TIMEOUT_MS, runMigrationsLocked, typeormConnection } from '@changeover/event-store';
import { ENTITIES } from './entities.js';
import { RegistryInit1732350000000 } from './migrations/1732350000000-registry-init.js';
import { NodeReportedInventory1764100000000 } from './migrations/1764100000000-node-reported-inventory.js';
import { NodeCredentials1764300000000 } from './migrations/1764300000000-node-credentials.js';
import { FinishedRollouts1764500000000 } from './migrations/1764500000000-finished-rollouts.js';
import { NodeRowsFillfactor1764700000000 } from './migrations/1764700000000-node-rows-fillfactor.js';

/** Connects and brings the registry schema up to date (once, when several instances start together). */
export async function openDatabase(url: string): Promise<DataSource> {
  const ds = new DataSource({
    type: 'postgres',
    ...typeormConnection(url, { max: 10, connectionTimeoutMillis: PG_CONNECT_TIMEOUT_MS }),
    entities: ENTITIES,
    migrations: [RegistryInit1732350000000, NodeReportedInventory1764100000000, NodeCredentials1764300000000, FinishedRollouts1764500000000, NodeRowsFillfactor1764700000000],
    migrationsTableName: 'registry_migrations',
    synchronize: false,
    logging: false,
  });
  await ds.initialize();
  await runMigrationsLocked(ds, 'changeover:registry:migrations');
  return ds;
}
