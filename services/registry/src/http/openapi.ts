import { z } from 'zod';
import {
  ClassRecord,
  EnrollNodeReply,
  EnrollNodeRequest,
  ErrorBody,
  GetPackagesReply,
  GetPackagesRequest,
  ImportImageReply,
  ListNodesReply,
  ListPackagesReply,
  NodeRecord,
  PublishPackageReply,
  PublishPackageRequest,
  RevokeNodeReply,
  RevokeNodeRequest,
  SelectModulesReply,
  SelectModulesRequest,
  SignedPackage,
  ApiTokenList,
  ApiTokenRecord,
  CreatedApiToken,
  CreateTokenRequest,
} from '@changeover/contracts';
import { BlobUploadReply, HealthReply, InventoryStatusReply, ReadyReply, SetClassBody } from './http.schemas.js';

// The OpenAPI document is generated from the contract schemas; only the paths table is written by hand.

const SCHEMAS = {
  ErrorBody,
  PublishPackageRequest,
  PublishPackageReply,
  ListPackagesReply,
  GetPackagesRequest,
  GetPackagesReply,
  SignedPackage,
  BlobUploadReply,
  InventoryStatusReply,
  EnrollNodeRequest,
  EnrollNodeReply,
  RevokeNodeBody: RevokeNodeRequest.omit({ nodeId: true }),
  RevokeNodeReply,
  NodeRecord,
  ListNodesReply,
  CreateTokenRequest,
  CreatedApiToken,
  ApiTokenList,
  ApiTokenRecord,
  SetClassBody,
  ClassRecord,
  ClassList: z.strictObject({ classes: z.array(ClassRecord) }),
  SelectModulesRequest,
  SelectModulesReply,
  ImportImageReply,
  HealthReply,
  ReadyReply,
} as const;
type SchemaName = keyof typeof SCHEMAS;

interface Op {
  summary: string;
  body?: SchemaName | 'binary';
  reply: SchemaName | 'binary' | 'text';
  status?: number;
  query?: string[];
  path?: string[];
  errors: number[];
}

const PATHS: Record<string, Record<string, Op>> = {
  '/packages': {
    get: { summary: 'List package versions (newest first per name)', reply: 'ListPackagesReply', query: ['name', 'limit'], errors: [400] },
    post: { summary: 'Publish a signed package; blobs inline (digest → base64) or uploaded before with PUT /blobs/{digest}. 201 stored, 200 same content already stored', body: 'PublishPackageRequest', reply: 'PublishPackageReply', status: 201, errors: [400, 409, 413, 422] },
  },
  '/packages/get': { post: { summary: 'Signed manifests by name@version (as the rollout service gets them)', body: 'GetPackagesRequest', reply: 'GetPackagesReply', status: 200, errors: [400, 404] } },
  '/packages/{name}/{version}': { get: { summary: 'One signed package', reply: 'SignedPackage', path: ['name', 'version'], errors: [400, 404] } },
  '/blobs/{digest}': {
    put: { summary: 'Stream a module blob (application/octet-stream); stored under its digest only if the content hashes to it. 201 stored, 200 already there', body: 'binary', reply: 'BlobUploadReply', status: 201, path: ['digest'], errors: [400, 413, 422] },
    get: { summary: 'Download a module blob (streamed)', reply: 'binary', path: ['digest'], errors: [400, 404] },
  },
  '/images': { post: { summary: 'Import an update image (.tar.gz with update.json, package files and blobs): all packages stored or none', body: 'binary', reply: 'ImportImageReply', status: 201, errors: [400, 409, 413, 422] } },
  '/select-modules': { post: { summary: 'Modules each node gets for a package set, grouped by identical selection', body: 'SelectModulesRequest', reply: 'SelectModulesReply', status: 200, errors: [400, 404] } },
  '/nodes': {
    get: { summary: 'List nodes, filtered by class, label (key=value) and status; paged by `after`', reply: 'ListNodesReply', query: ['classId', 'status', 'label', 'limit', 'after'], errors: [400] },
    post: { summary: 'Enrol a node (idempotent); with REGISTRY_NATS_AUTHORITY set, the reply carries a fresh NATS identity for it in natsCredentials (a secret, shown once)', body: 'EnrollNodeRequest', reply: 'EnrollNodeReply', status: 201, errors: [400] },
  },
  '/nodes/{nodeId}': { get: { summary: 'One node', reply: 'NodeRecord', path: ['nodeId'], errors: [400, 404] } },
  '/nodes/{nodeId}/revoke': { post: { summary: "Revoke the node's NATS credentials (all, or all but the newest with keepLatest) and push the revocation to the NATS servers", body: 'RevokeNodeBody', reply: 'RevokeNodeReply', status: 200, path: ['nodeId'], errors: [400, 404, 409, 503] } },
  '/nodes/{nodeId}/inventory': { get: { summary: "The stored inventory; stale when the node's last heartbeat claimed another digest (a lost inventory report)", reply: 'InventoryStatusReply', path: ['nodeId'], errors: [400, 404] } },
  '/classes': { get: { summary: 'Every node class', reply: 'ClassList', errors: [] } },
  '/classes/{classId}': {
    get: { summary: 'One node class', reply: 'ClassRecord', path: ['classId'], errors: [400, 404] },
    put: { summary: 'Set the desired packages of a class (event class.configuration-changed)', body: 'SetClassBody', reply: 'ClassRecord', path: ['classId'], errors: [400, 404] },
  },
  '/tokens': {
    post: { summary: 'Create an API token (the secret is shown in this answer only)', body: 'CreateTokenRequest', reply: 'CreatedApiToken', status: 201, errors: [400, 401, 403] },
    get: { summary: 'List API tokens (never their secrets)', reply: 'ApiTokenList', errors: [401, 403] },
  },
  '/tokens/{id}': { delete: { summary: 'Revoke an API token at once', reply: 'ApiTokenRecord', path: ['id'], errors: [400, 401, 403, 404] } },
  '/health': { get: { summary: 'Liveness (kept for older probes; same as /health/live)', reply: 'HealthReply', errors: [] } },
  '/health/live': { get: { summary: 'Liveness: the process is up', reply: 'HealthReply', errors: [] } },
  '/health/ready': { get: { summary: 'Readiness: 200 when Postgres answers, NATS is connected and migrations ran; 503 naming the failed check (same body)', reply: 'ReadyReply', errors: [] } },
  '/metrics': { get: { summary: 'Prometheus metrics', reply: 'text', errors: [] } },
};

/** The role each route needs (the controllers' @Roles); routes missing here are open (health, metrics, this document). */
const ROLES: Record<string, 'viewer' | 'operator' | 'admin'> = {
  'get /packages': 'viewer',
  'post /packages': 'operator',
  'post /packages/get': 'viewer',
  'get /packages/{name}/{version}': 'viewer',
  'put /blobs/{digest}': 'operator',
  'get /blobs/{digest}': 'viewer',
  'post /images': 'operator',
  'post /select-modules': 'viewer',
  'get /nodes': 'viewer',
  'post /nodes': 'operator',
  'get /nodes/{nodeId}': 'viewer',
  'post /nodes/{nodeId}/revoke': 'admin',
  'get /nodes/{nodeId}/inventory': 'viewer',
  'get /classes': 'viewer',
  'get /classes/{classId}': 'viewer',
  'put /classes/{classId}': 'operator',
  'post /tokens': 'admin',
  'get /tokens': 'admin',
  'delete /tokens/{id}': 'admin',
};

const ref = (name: SchemaName) => ({ $ref: `#/components/schemas/${name}` });
const content = (kind: SchemaName | 'binary' | 'text') =>
  kind === 'binary' ? { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } : kind === 'text' ? { 'text/plain': { schema: { type: 'string' } } } : { 'application/json': { schema: ref(kind) } };

let cached: Record<string, unknown> | undefined;

/** The OpenAPI 3.1 document served at /openapi.json. */
export function openApiDocument(): Record<string, unknown> {
  if (cached) return cached;
  const schemas = Object.fromEntries(Object.entries(SCHEMAS).map(([name, s]) => [name, z.toJSONSchema(s, { target: 'draft-2020-12', io: 'input', unrepresentable: 'any' })]));
  const paths = Object.fromEntries(
    Object.entries(PATHS).map(([path, ops]) => [
      path,
      Object.fromEntries(
        Object.entries(ops).map(([method, op]) => [
          method,
          {
            summary: op.summary,
            ...(ROLES[`${method} ${path}`] ? { 'x-role': ROLES[`${method} ${path}`], security: [{ bearer: [] }] } : {}),
            parameters: [...(op.path ?? []).map((name) => ({ name, in: 'path', required: true, schema: { type: 'string' } })), ...(op.query ?? []).map((name) => ({ name, in: 'query', required: false, schema: { type: 'string' } }))],
            ...(op.body ? { requestBody: { required: true, content: content(op.body) } } : {}),
            responses: {
              [String(op.status ?? 200)]: { description: 'success', content: content(op.reply) },
              ...Object.fromEntries(op.errors.map((s) => [String(s), { description: 'error', content: { 'application/json': { schema: ref('ErrorBody') } } }])),
            },
          },
        ]),
      ),
    ]),
  );
  cached = { openapi: '3.1.0', info: { title: 'Changeover registry', version: '0.1.0', description: 'Packages, module blobs, update images, nodes and classes. Errors have the ErrorBody shape.' }, paths, components: { schemas, securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } } };
  return cached;
}
