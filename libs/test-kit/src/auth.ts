/** The bootstrap admin token the services under test are started with (CHANGEOVER_ADMIN_TOKEN); never use it outside tests. */
export const TEST_ADMIN_TOKEN = 'test-admin-token-not-for-production-0123456789';

/** The Authorization header of TEST_ADMIN_TOKEN. */
export const TEST_AUTH_HEADER = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } as const;
