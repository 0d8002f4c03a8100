/** What each dependency looks like right now; the service is ready only when every one is true. */
export type Readiness = () => Promise<Record<string, boolean>>;

/** Postgres answers a trivial query in time, the NATS connection is open and the migrations ran. */
export function readinessOf(deps: { ping: () => Promise<unknown>; natsClosed: () => boolean; migrated: () => boolean }, timeoutMs = 2000): Readiness {
  return async () => {
    // A hung connection must not hang the probe: an answer later than the deadline counts as down.
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
    const postgres = await Promise.race([deps.ping().then(() => true, () => false), deadline]);
    clearTimeout(timer);
    return { postgres, nats: !deps.natsClosed(), migrations: deps.migrated() };
  };
}
