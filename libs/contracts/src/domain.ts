import { z } from 'zod';
import { ChangeoverError } from './errors.js';
import { ClassId, NodeId } from './ids.js';

// Limits that keep any one message bounded.
export const MAX = {
  name: 128,
  text: 4096,
  list: 1000,
  nodesPerMessage: 100_000,
} as const;

const SEMVER = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z-.]+)?(?:\+[0-9A-Za-z-.]+)?$/;

export const Name = z.string().max(128).regex(/^[a-z0-9][a-z0-9._-]{0,127}$/, 'must be lowercase [a-z0-9._-], 1-128 chars');
export const SemVer = z.string().max(MAX.name).regex(SEMVER, 'must be a semantic version like 1.2.3');
/** A semver range such as ^1.2.0, >=2 <3 or 1.x (checked with `semver` by consumers). */
export const SemVerRange = z.string().min(1).max(MAX.name).regex(/^[0-9A-Za-z.^~<>=| *xX+-]+$/, 'must be a semver range');
export const Digest = z.string().max(71).regex(/^sha256:[a-f0-9]{64}$/, 'must be sha256:<64 hex>');
export const Text = z.string().max(MAX.text);
export const Timestamp = z.iso.datetime({ offset: true });

export const PROCESSOR_TYPES = ['x86_64', 'arm64', 'any'] as const;
export const ProcessorType = z.enum(PROCESSOR_TYPES);
export type ProcessorType = z.infer<typeof ProcessorType>;

/** What a node is: compared by the registry with each module's `requires` (claim 3). */
export const Characteristics = z.strictObject({
  arch: z.enum(['x86_64', 'arm64']),
  os: z.string().max(MAX.name).default('linux'),
  memoryMb: z.number().int().nonnegative().max(1 << 30),
  diskMb: z.number().int().nonnegative().max(1 << 30).optional(),
  labels: z.record(z.string().max(MAX.name), z.string().max(MAX.name)).default({}),
});
export type Characteristics = z.infer<typeof Characteristics>;

/** Node characteristics a module needs. */
export const Requirements = z.strictObject({
  os: z.array(z.string().max(MAX.name)).max(32).optional(),
  minMemoryMb: z.number().int().nonnegative().optional(),
  minDiskMb: z.number().int().nonnegative().optional(),
  labels: z.record(z.string().max(MAX.name), z.string().max(MAX.name)).optional(),
});
export type Requirements = z.infer<typeof Requirements>;

export const HealthCheck = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('http'), port: z.number().int().min(1).max(65535).optional(), path: z.string().max(MAX.name).default('/health'), timeoutMs: z.number().int().positive().max(600_000).default(5000) }),
  z.strictObject({ type: z.literal('tcp'), port: z.number().int().min(1).max(65535).optional(), timeoutMs: z.number().int().positive().max(600_000).default(5000) }),
  z.strictObject({ type: z.literal('command'), command: z.array(z.string().max(MAX.text)).min(1).max(64), timeoutMs: z.number().int().positive().max(600_000).default(5000) }),
]);
export type HealthCheck = z.infer<typeof HealthCheck>;

/** Hook commands for modules that do not link the agent SDK. */
export const Hooks = z.strictObject({
  /** exit 0 accepts; non-zero vetoes with its output as the message (`PROCESS_BUSY: …` sets a known veto reason, else CUSTOM). */
  evaluate: z.array(z.string().max(MAX.text)).min(1).max(64).optional(),
  prepare: z.array(z.string().max(MAX.text)).min(1).max(64).optional(),
  changed: z.array(z.string().max(MAX.text)).min(1).max(64).optional(),
});
export type Hooks = z.infer<typeof Hooks>;

/** How the agent runs a runnable module. `{module}` in command/args is the module file's path. */
export const RunSpec = z.strictObject({
  command: z.string().min(1).max(MAX.text),
  args: z.array(z.string().max(MAX.text)).max(256).default([]),
  env: z.record(z.string().max(MAX.name), z.string().max(MAX.text)).default({}),
  /** A TCP port the agent owns and hands to the process (fd 3), so a changeover never drops a connection. */
  listen: z.strictObject({ port: z.number().int().min(0).max(65535), host: z.string().max(MAX.name).default('127.0.0.1') }).optional(),
  healthCheck: HealthCheck.optional(),
  hooks: Hooks.optional(),
  /** Restart this process when a module it depends on changes. */
  restartOnChange: z.boolean().default(false),
  stopTimeoutMs: z.number().int().positive().max(600_000).default(10_000),
});
export type RunSpec = z.infer<typeof RunSpec>;

/** The unit that runs or is loaded. Its digest is its binary signature (claims 2, 13). */
export const Module = z.strictObject({
  name: Name,
  version: SemVer,
  processorType: ProcessorType,
  size: z.number().int().nonnegative(),
  digest: Digest,
  dependsOn: z.array(Name).max(MAX.list).default([]),
  requires: Requirements.default({}),
  run: RunSpec.optional(),
});
export type Module = z.infer<typeof Module>;

/** `billing-api@2.1.0` — an API a package provides. */
export const ApiProvided = z.string().max(MAX.name).regex(/^[a-z0-9][a-z0-9._-]*@\d+\.\d+\.\d+$/, 'must be api@x.y.z');
/** `auth-api@^1` — an API a package consumes, with a semver range. */
export const ApiConsumed = z.string().max(MAX.name).regex(/^[a-z0-9][a-z0-9._-]*@[0-9A-Za-z.^~<>=| *xX+-]+$/, 'must be api@range');

/** A package manifest (claims 1, 25, 26). Signed as its canonical JSON. */
export const PackageManifest = z.strictObject({
  name: Name,
  version: SemVer,
  description: Text.default(''),
  modules: z.array(Module).min(1).max(256),
  /** Other packages needed on the same node: name → semver range. */
  requires: z.record(Name, SemVerRange).default({}),
  provides: z.array(ApiProvided).max(MAX.list).default([]),
  consumes: z.array(ApiConsumed).max(MAX.list).default([]),
});
export type PackageManifest = z.infer<typeof PackageManifest>;

export const Signature = z.strictObject({
  keyId: z.string().min(1).max(MAX.name),
  /** Ed25519 over canonicalJson(manifest), base64. */
  value: z.string().max(256),
});
export type Signature = z.infer<typeof Signature>;

export const SignedPackage = z.strictObject({ manifest: PackageManifest, signature: Signature.optional() });
export type SignedPackage = z.infer<typeof SignedPackage>;

export const PackageRef = z.strictObject({ name: Name, version: SemVer });
export type PackageRef = z.infer<typeof PackageRef>;
export const packageId = (p: PackageRef) => `${p.name}@${p.version}`;

/** The cluster infrastructure versions an agent can run. */
export const VersionRange = z.strictObject({ min: z.number().int().positive(), max: z.number().int().positive() }).refine((r) => r.min <= r.max, 'min must be ≤ max');
export type VersionRange = z.infer<typeof VersionRange>;

/** Where an update goes: nodes and/or classes, and the packages for each (claims 21–23). */
export const Target = z.union([
  z.strictObject({ nodes: z.array(NodeId).min(1).max(MAX.nodesPerMessage), packages: z.array(PackageRef).min(1).max(256) }),
  z.strictObject({ classes: z.array(ClassId).min(1).max(1000), packages: z.array(PackageRef).min(1).max(256) }),
]);
export type Target = z.infer<typeof Target>;

/** A software update: what to install where. */
export const SoftwareUpdate = z.strictObject({
  description: Text.default(''),
  targets: z.array(Target).min(1).max(1000),
});
export type SoftwareUpdate = z.infer<typeof SoftwareUpdate>;

/** `update.json` at the root of an update image (.tar.gz with manifests and blobs, claim 20). */
export const UpdateImageIndex = z.strictObject({
  update: SoftwareUpdate,
  /** Paths inside the image of signed package files (SignedPackage JSON). */
  packages: z.array(z.string().max(MAX.text)).min(1).max(256),
  /** digest → path inside the image of the module blob. */
  blobs: z.record(Digest, z.string().max(MAX.text)),
});
export type UpdateImageIndex = z.infer<typeof UpdateImageIndex>;

/** A module as a node sees it in a proposal (identity and dependencies, no blob). */
export const ModuleRef = z.strictObject({
  name: Name,
  version: SemVer,
  digest: Digest,
  processorType: ProcessorType,
  size: z.number().int().nonnegative(),
  dependsOn: z.array(Name).max(MAX.list).default([]),
});
export type ModuleRef = z.infer<typeof ModuleRef>;

/** A package narrowed to the modules selected for one node (claim 3). */
export const SelectedPackage = z.strictObject({
  name: Name,
  version: SemVer,
  modules: z.array(ModuleRef).max(256),
  requires: z.record(Name, SemVerRange).default({}),
  provides: z.array(ApiProvided).max(MAX.list).default([]),
  consumes: z.array(ApiConsumed).max(MAX.list).default([]),
});
export type SelectedPackage = z.infer<typeof SelectedPackage>;

/** Canonical JSON: keys sorted, no whitespace. What signatures and selection hashes are computed over. */
export function canonicalJson(value: unknown, seen: Set<object> = new Set()): string {
  if (value === null || typeof value !== 'object') {
    // As JSON: undefined (top level or in an array) is null; what JSON cannot carry is a typed error, not a TypeError.
    if (value === undefined) return 'null';
    if (typeof value === 'bigint' || typeof value === 'function' || typeof value === 'symbol') throw new ChangeoverError('VALIDATION_FAILED', `canonical JSON cannot carry a ${typeof value}`);
    return JSON.stringify(value);
  }
  if (seen.has(value)) throw new ChangeoverError('VALIDATION_FAILED', 'canonical JSON cannot carry a cycle');
  seen.add(value);
  try {
    return canonicalObject(value, seen);
  } finally {
    seen.delete(value);
  }
}

function canonicalObject(value: object, seen: Set<object>): string {
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v, seen)).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v, seen)}`).join(',')}}`;
}
