import { DataSource } from 'typeorm';
import { runMigrationsLocked, typeormConnection } from '@changeover/event-store';
import { ENTITIES } from './entities.js';
import { NotifierInit1732350000000 } from './1732350000000-notifier-init.js';
import { DeliveryClaimToken1765100000000 } from './1765100000000-delivery-claim-token.js';

export function notifierDataSource(url: string): DataSource {
  return new DataSource({
    type: 'postgres',
    ...typeormConnection(url, { max: 20, connectionTimeoutMillis: 10_000 }),
    entities: ENTITIES,
    migrations: [NotifierInit1732350000000, DeliveryClaimToken1765100000000],
    migrationsTableName: 'notifier_migrations',
    synchronize: false,
    logging: false,
  });
}

/** Connects and runs pending migrations under an advisory lock, so concurrent starts do not race. */
export async function openDatabase(url: string): Promise<DataSource> {
  const ds = await notifierDataSource(url).initialize();
  try {
    await runMigrationsLocked(ds, 'changeover:notifier:migrations', 'each');
  } catch (e) {
    await ds.destroy();
    throw e;
  }
  return ds;
}
