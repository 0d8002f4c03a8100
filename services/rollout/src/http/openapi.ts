import { z } from 'zod';
import { MAX_SHOW_WAIT_MS, AdjustClusterVersionReply, AdjustClusterVersionRequest, ClusterVersionStatus, ApiTokenList, ApiTokenRecord, CreatedApiToken, CreateTokenRequest, CancelRequest, CreateRolloutRequest, ErrorBody, ForceRequest, PlanRequest, PlanResult, RegressRequest, ResumeRequest, RevoteRequest, RolloutList, RolloutSummary, AuditList, PauseRequest, RetryRequest, NodeRetryRequest, SetClassWindowsRequest, ClassWindows, MAX_PAGE_LIMIT, ROLLOUT_STATUSES, AUDIT_ACTIONS, FleetPage, WhoAmI, MAX_FLEET_SCAN, NodeStatus, RolloutStreamEntry, RolloutStreamEnd } from '@changeover/contracts';

/** 'none': open to probes, no token. */
type Role = 'viewer' | 'operator' | 'admin' | 'none';
interface Route {
  method: 'get' | 'post' | 'put' | 'delete';
  path: string;
  summary: string;
  role: Role;
  request?: z.ZodType;
  /** Query parameters. */
  query?: { name: string; description: string; schema: Record<string, unknown> }[];
  /** A raw body instead of JSON. */
  rawBody?: string;
  response: z.ZodType;
  /** An answer that is not JSON (a page, a module, an event stream): its content type and what it holds. */
  rawResponse?: { type: string; description: string };
  status?: number;
}

const STREAM_TEXT = `server-sent events (read with fetch and the Authorization header; EventSource cannot send it): \`event: event\` (id = the event's stream position) ${JSON.stringify(z.toJSONSchema(RolloutStreamEntry))}; \`event: summary\` a RolloutSummary after each change; \`event: end\` ${JSON.stringify(z.toJSONSchema(RolloutStreamEnd))}, then the server closes; \`: keep-alive\` comments`;

/** The paths table: every route, its role, request and answer schemas (the controllers follow it). */
export const ROUTES: Route[] = [
  { method: 'post', path: '/rollouts', summary: 'Create a rollout from packages and targets; with startAt it stays scheduled until then (cancellable); the targeted classes\' maintenance windows are copied into it', role: 'operator', request: CreateRolloutRequest, response: RolloutSummary, status: 201 },
  { method: 'post', path: '/rollouts/from-image', summary: 'Create a rollout from an update image (.tar.gz); query: policy (JSON), rolloutId', role: 'operator', rawBody: 'application/gzip', response: RolloutSummary, status: 201 },
  {
    method: 'get', path: '/rollouts', summary: 'Rollout history, newest first (created time, then id), a page at a time; malformed filters are 400 VALIDATION_FAILED naming the fields', role: 'viewer', response: RolloutList,
    query: [
      { name: 'status', description: `comma-separated statuses (${ROLLOUT_STATUSES.join(', ')})`, schema: { type: 'string' } },
      { name: 'package', description: 'rollouts whose update names this package', schema: { type: 'string' } },
      { name: 'version', description: 'with package: only that version', schema: { type: 'string' } },
      { name: 'class', description: 'rollouts targeting this class', schema: { type: 'string' } },
      { name: 'createdAfter', description: 'ISO time, inclusive', schema: { type: 'string', format: 'date-time' } },
      { name: 'createdBefore', description: 'ISO time, exclusive', schema: { type: 'string', format: 'date-time' } },
      { name: 'actor', description: 'who created the rollout (token name)', schema: { type: 'string' } },
      { name: 'cursor', description: 'nextCursor of the page before (opaque)', schema: { type: 'string' } },
      { name: 'limit', description: `entries per page, 1-${MAX_PAGE_LIMIT} (default 100)`, schema: { type: 'string', pattern: '^\\d{1,4}$' } },
    ],
  },
  {
    method: 'get', path: '/audit', summary: 'Operator actions (create, force, cancel, revote, resume, regress, pause, retry, cluster-version-adjust): who, when, on what, why; newest first, a page at a time', role: 'operator', response: AuditList,
    query: [
      { name: 'actor', description: 'who acted (token name)', schema: { type: 'string' } },
      { name: 'action', description: `comma-separated actions (${AUDIT_ACTIONS.join(', ')})`, schema: { type: 'string' } },
      { name: 'rolloutId', description: 'actions on this rollout', schema: { type: 'string' } },
      { name: 'since', description: 'ISO time, inclusive', schema: { type: 'string', format: 'date-time' } },
      { name: 'until', description: 'ISO time, exclusive', schema: { type: 'string', format: 'date-time' } },
      { name: 'cursor', description: 'nextCursor of the page before (opaque)', schema: { type: 'string' } },
      { name: 'limit', description: `entries per page, 1-${MAX_PAGE_LIMIT} (default 100)`, schema: { type: 'string', pattern: '^\\d{1,4}$' } },
    ],
  },
  { method: 'post', path: '/rollouts/{id}/pause', summary: 'Pause an applying rollout: no new waves or commands, nodes mid-changeover finish; resume continues', role: 'operator', request: PauseRequest, response: RolloutSummary },
  { method: 'post', path: '/rollouts/{id}/nodes/{nodeId}/retry', summary: 'Commit a failed or timed-out node again (a new attempt; the node\'s retry deadline is the changeover timeout); 409 INVALID_STATE for a node in another phase, 404 NOT_FOUND for a node not in the rollout', role: 'operator', request: NodeRetryRequest, response: RolloutSummary },
  { method: 'post', path: '/rollouts/{id}/retry', summary: 'Commit the named nodes (nodeIds), or every failed and timed-out node, again; all or nothing: one node not retryable refuses the request (409 INVALID_STATE, 404 NOT_FOUND)', role: 'operator', request: RetryRequest, response: RolloutSummary },
  { method: 'get', path: '/classes/{classId}/windows', summary: 'A class\'s maintenance windows, whether one is open now and when the next opens', role: 'viewer', response: ClassWindows },
  { method: 'put', path: '/classes/{classId}/windows', summary: 'Set a class\'s weekly maintenance windows (IANA time zone; an end before the start crosses midnight; [] lifts them). Rollouts created afterwards start waves only inside them', role: 'operator', request: SetClassWindowsRequest, response: ClassWindows },
  {
    method: 'get', path: '/rollouts/{id}', summary: 'Show a rollout and why it is stuck; with after and waitMs, a long poll for its next change', role: 'viewer', response: RolloutSummary,
    query: [
      { name: 'nodes', description: 'true: each node\'s phase too', schema: { type: 'string', enum: ['true', 'false'], default: 'false' } },
      { name: 'after', description: 'the version last seen: with waitMs, answer once the rollout is past it', schema: { type: 'string', pattern: '^\\d{1,15}$' } },
      { name: 'waitMs', description: `how long to hold the request for a change (at most ${MAX_SHOW_WAIT_MS}); held by the instance that owns the rollout, answered at once by another`, schema: { type: 'string', pattern: '^\\d{1,15}$' } },
    ],
  },
  { method: 'post', path: '/rollouts/{id}/force', summary: 'Force a blocked rollout (claim 19)', role: 'admin', request: ForceRequest, response: RolloutSummary },
  { method: 'post', path: '/rollouts/{id}/cancel', summary: 'Cancel a rollout', role: 'operator', request: CancelRequest, response: RolloutSummary },
  { method: 'post', path: '/rollouts/{id}/revote', summary: 'Ask the nodes to vote again', role: 'operator', request: RevoteRequest, response: RolloutSummary },
  { method: 'post', path: '/rollouts/{id}/resume', summary: 'Resume a paused rollout', role: 'operator', request: ResumeRequest, response: RolloutSummary },
  { method: 'post', path: '/rollouts/{id}/regress', summary: 'Regress the rollout or some nodes to the previous or a named version (claim 11)', role: 'operator', request: RegressRequest, response: RolloutSummary },
  { method: 'get', path: '/health', summary: 'Liveness (kept for older probes; same as /health/live)', role: 'none', response: z.strictObject({ status: z.literal('ok') }) },
  { method: 'get', path: '/health/live', summary: 'Liveness: the process is up', role: 'none', response: z.strictObject({ status: z.literal('ok') }) },
  { method: 'get', path: '/health/ready', summary: 'Readiness: 200 when Postgres answers, NATS is connected and migrations ran; else 503 with the same body naming the failed check', role: 'none', response: z.strictObject({ status: z.enum(['ok', 'unavailable']), checks: z.record(z.string(), z.boolean()) }) },
  { method: 'post', path: '/tokens', summary: 'Create an API token (the secret is shown in this answer only)', role: 'admin', request: CreateTokenRequest, response: CreatedApiToken, status: 201 },
  { method: 'get', path: '/tokens', summary: 'List API tokens (never their secrets)', role: 'admin', response: ApiTokenList },
  { method: 'delete', path: '/tokens/{id}', summary: 'Revoke an API token at once', role: 'admin', response: ApiTokenRecord },
  { method: 'post', path: '/plans', summary: 'Dry run: selections and would-be votes, nothing committed', role: 'operator', request: PlanRequest, response: PlanResult },
  { method: 'get', path: '/cluster-version', summary: 'Cluster infrastructure version: nodes (agent version, range), groups (version, members), readiness for ?version= (default the highest every node can run) with every blocker, adjustment progress', role: 'viewer', response: ClusterVersionStatus },
  { method: 'get', path: '/whoami', summary: 'The caller: token name, role and id (the console shows the actions this role may take)', role: 'viewer', response: WhoAmI },
  {
    method: 'get', path: '/fleet', summary: `Nodes in node id order with their class, status, agent and cluster versions and active packages, a page at a time; at most ${MAX_FLEET_SCAN} registry nodes read per request (a short page then has a nextCursor)`, role: 'viewer', response: FleetPage,
    query: [
      { name: 'class', description: 'nodes of this class', schema: { type: 'string' } },
      { name: 'status', description: `node status (${NodeStatus.options.join(', ')})`, schema: { type: 'string', enum: [...NodeStatus.options] } },
      { name: 'agentVersion', description: 'nodes whose agent runs this version', schema: { type: 'string' } },
      { name: 'package', description: 'nodes with this package active: name or name@version', schema: { type: 'string' } },
      { name: 'search', description: 'a part of the node id (case-insensitive)', schema: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' } },
      { name: 'cursor', description: 'nextCursor of the page before (opaque)', schema: { type: 'string' } },
      { name: 'limit', description: `nodes per page, 1-${MAX_PAGE_LIMIT} (default 100)`, schema: { type: 'string', pattern: '^\\d{1,4}$' } },
    ],
  },
  { method: 'get', path: '/rollouts/{id}/stream', summary: 'Live rollout: its stored events and its summary after each change as server-sent events, until it finishes (end: finished), ROLLOUT_STREAM_MAX_MS pass (end: expired; reconnect with Last-Event-ID = the last event id seen) or the service stops; 429 RATE_LIMITED past ROLLOUT_MAX_STREAMS open streams', role: 'viewer', response: z.string(), rawResponse: { type: 'text/event-stream', description: STREAM_TEXT } },
  { method: 'get', path: '/console', summary: 'The operator console (a page; it asks for a token and sends it as a bearer token on every call)', role: 'none', response: z.string(), rawResponse: { type: 'text/html', description: 'the console page' } },
  { method: 'get', path: '/console/console.css', summary: 'The console style sheet', role: 'none', response: z.string(), rawResponse: { type: 'text/css', description: 'style sheet' } },
  { method: 'get', path: '/console/app/{file}', summary: 'The console ES modules (404 NOT_FOUND for any other name)', role: 'none', response: z.string(), rawResponse: { type: 'text/javascript', description: 'an ES module' } },
  { method: 'post', path: '/cluster-version/adjust', summary: 'Adjust every group to a cluster version (dryRun: checks only); refused 409 NODE_NOT_ACTIVE / GROUP_PARTITIONED / NODE_INCAPABLE with details.blockers, CONFLICT while one runs', role: 'admin', request: AdjustClusterVersionRequest, response: AdjustClusterVersionReply },
];

const schema = (s: z.ZodType, io: 'input' | 'output') => z.toJSONSchema(s, { io, unrepresentable: 'any' });

/** OpenAPI 3.1 document generated from the zod contracts and the paths table. */
export function openApiDocument(): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of ROUTES) {
    const params: Record<string, unknown>[] = [...r.path.matchAll(/\{(\w+)\}/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: m[1] === 'file' ? { type: 'string', pattern: '^[a-z][a-z0-9-]*\\.js$' } : { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' } }));
    if (r.path.endsWith('/stream')) params.push({ name: 'Last-Event-ID', in: 'header', required: false, description: 'the id of the last event seen: the stream goes on after it', schema: { type: 'string', pattern: '^\\d{1,15}$' } });
    for (const q of r.query ?? []) params.push({ name: q.name, in: 'query', required: false, description: q.description, schema: q.schema });
    paths[r.path] ??= {};
    paths[r.path]![r.method] = {
      summary: r.summary,
      'x-role': r.role,
      parameters: params,
      ...(r.request ? { requestBody: { required: true, content: { 'application/json': { schema: schema(r.request, 'input') } } } } : {}),
      ...(r.rawBody ? { requestBody: { required: true, content: { [r.rawBody]: { schema: { type: 'string', format: 'binary' } } } } } : {}),
      responses: {
        [String(r.status ?? 200)]: r.rawResponse ? { description: r.rawResponse.description, content: { [r.rawResponse.type]: { schema: { type: 'string' } } } } : { description: 'OK', content: { 'application/json': { schema: schema(r.response, 'output') } } },
        ...(r.role === 'none' ? {} : { '4XX': { description: 'Refused: a typed error', content: { 'application/json': { schema: schema(ErrorBody, 'output') } } } }),
      },
      ...(r.role === 'none' ? {} : { security: [{ bearer: [] }] }),
    };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Changeover rollout service', version: '0.1.0', description: 'Create, schedule, watch, force, cancel, re-vote, pause, retry, regress and plan rollouts; maintenance windows of classes; the operator console at /console.' },
    servers: [{ url: 'http://127.0.0.1:7102' }],
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    paths,
  };
}
