import { z } from 'zod';
import { ApiTokenList, ApiTokenRecord, CreatedApiToken, CreateTokenRequest, CreateSubscriptionRequest, Delivery, DeliveryDetail, ErrorBody, ListDeliveriesQuery, Subscription } from '@changeover/contracts';

type Route = { method: 'get' | 'post' | 'delete'; path: string; summary: string; role?: 'viewer' | 'operator' | 'admin'; body?: z.ZodType; query?: z.ZodObject; ok: { status: number; schema?: z.ZodType; text?: string } };

const id = { name: 'id', in: 'path', required: true, schema: { type: 'string', format: 'uuid' } };

/** The paths table: one line per route; the schemas come from the contracts. */
const ROUTES: Route[] = [
  { method: 'post', path: '/subscriptions', summary: 'Create a subscription (a webhook secret is generated when omitted and shown only here)', role: 'operator', body: CreateSubscriptionRequest, ok: { status: 201, schema: Subscription } },
  { method: 'get', path: '/subscriptions', summary: 'List subscriptions', role: 'viewer', ok: { status: 200, schema: z.array(Subscription) } },
  { method: 'get', path: '/subscriptions/{id}', summary: 'Read a subscription', role: 'viewer', ok: { status: 200, schema: Subscription } },
  { method: 'delete', path: '/subscriptions/{id}', summary: 'Delete a subscription (its delivery log stays)', role: 'operator', ok: { status: 204 } },
  { method: 'get', path: '/deliveries', summary: 'List deliveries, newest first', role: 'viewer', query: ListDeliveriesQuery, ok: { status: 200, schema: z.array(Delivery) } },
  { method: 'get', path: '/deliveries/{id}', summary: 'Read a delivery with its attempts', role: 'viewer', ok: { status: 200, schema: DeliveryDetail } },
  { method: 'post', path: '/deliveries/{id}/redeliver', summary: 'Send a delivery again with a fresh attempt budget', role: 'operator', ok: { status: 202, schema: Delivery } },
  { method: 'post', path: '/tokens', summary: 'Create an API token (the secret is shown in this answer only)', role: 'admin', body: CreateTokenRequest, ok: { status: 201, schema: CreatedApiToken } },
  { method: 'get', path: '/tokens', summary: 'List API tokens (never their secrets)', role: 'admin', ok: { status: 200, schema: ApiTokenList } },
  { method: 'delete', path: '/tokens/{id}', summary: 'Revoke an API token at once', role: 'admin', ok: { status: 200, schema: ApiTokenRecord } },
  { method: 'get', path: '/health/live', summary: 'Liveness', ok: { status: 200 } },
  { method: 'get', path: '/health/ready', summary: 'Readiness: database, NATS and the event consumer', ok: { status: 200 } },
  { method: 'get', path: '/metrics', summary: 'Prometheus metrics', ok: { status: 200, text: 'text/plain' } },
];

const json = (schema: z.ZodType, io: 'input' | 'output' = 'output') => z.toJSONSchema(schema, { io, unrepresentable: 'any' });

/** OpenAPI 3.1 document of the notifier's REST API. */
export function openApiDocument(): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of ROUTES) {
    const params: unknown[] = r.path.includes('{id}') ? [id] : [];
    if (r.query) for (const [name, schema] of Object.entries(r.query.shape)) params.push({ name, in: 'query', required: false, schema: json(schema as z.ZodType, 'input') });
    const responses: Record<string, unknown> = {
      [r.ok.status]: { description: 'OK', ...(r.ok.schema ? { content: { 'application/json': { schema: json(r.ok.schema) } } } : r.ok.text ? { content: { [r.ok.text]: { schema: { type: 'string' } } } } : {}) },
      '4XX': { description: 'Refused', content: { 'application/json': { schema: { $ref: '#/components/schemas/ErrorBody' } } } },
    };
    (paths[r.path] ??= {})[r.method] = {
      summary: r.summary,
      ...(r.role ? { 'x-role': r.role, security: [{ bearer: [] }] } : {}),
      ...(params.length ? { parameters: params } : {}),
      ...(r.body ? { requestBody: { required: true, content: { 'application/json': { schema: json(r.body, 'input') } } } } : {}),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Changeover notifier', version: '1.0.0', description: 'Subscriptions to rollout events and the delivery log of webhook, Slack and e-mail notifications.' },
    paths,
    components: { schemas: { ErrorBody: json(ErrorBody) }, securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
  };
}
