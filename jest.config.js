// Three tiers by file name (unit: pure; int: real Postgres and NATS; e2e: several real processes), and the chaos run.
// Workspace packages resolve to their sources so the fast tier needs no build.
const swc = [
  '@swc/jest',
  {
    jsc: {
      parser: { syntax: 'typescript', decorators: true },
      transform: { legacyDecorator: true, decoratorMetadata: true },
      target: 'es2022',
      keepClassNames: true,
    },
    module: { type: 'es6' },
  },
];

const base = {
  rootDir: '.',
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  transform: { '^.+\\.ts$': swc },
  moduleNameMapper: {
    '^@changeover/([a-z-]+)$': '<rootDir>/libs/$1/src/index.ts',
    '^(\\.{1,2}/.*)\\.js$': '$1',
  },
  testPathIgnorePatterns: ['/node_modules/', '/dist/'],
};

export default {
  // A global option (per-project values are ignored): integration and e2e tests wait on real engines and processes.
  testTimeout: 120_000,
  projects: [
    { ...base, displayName: 'unit', testMatch: ['<rootDir>/**/src/**/*.unit.spec.ts'] },
    { ...base, displayName: 'int', testMatch: ['<rootDir>/**/src/**/*.int.spec.ts'] },
    { ...base, displayName: 'e2e', testMatch: ['<rootDir>/**/src/**/*.e2e.spec.ts'] },
    // `npm run test:chaos`: a seeded run of random kills across every process (CHAOS_SEED replays one).
    { ...base, displayName: 'chaos', testMatch: ['<rootDir>/**/src/**/*.chaos.spec.ts'] },
  ],
};
