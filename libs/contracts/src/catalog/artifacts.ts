import { z } from 'zod';
import { stringify } from 'yaml';
import { ERROR_CODES, ErrorBody } from '../errors.js';
import { CATALOG, catalogMessages, type ChannelSpec, type MessageSpec } from './catalog.js';

// Builds asyncapi.yaml and schemas/*.json from the catalog, deterministically (same input, same bytes).

export const GENERATED_HINT = 'run npm run generate -w @changeover/contracts';
export const ASYNCAPI_FILE = 'asyncapi.yaml';
export const SCHEMAS_DIR = 'schemas';

type Json = Record<string, unknown>;

/** The JSON Schema (draft-07, what AsyncAPI's default schema format extends) of what a sender may send. */
export function jsonSchemaOf(schema: z.ZodType): Json {
  const out = z.toJSONSchema(schema, { target: 'draft-7', io: 'input', unrepresentable: 'any' }) as Json;
  delete out['$schema'];
  return out;
}

const opId = (c: ChannelSpec) => `${c.action === 'send' ? 'send' : 'receive'}${c.id.replace(/(^|[-._])([a-z0-9])/g, (_m, _s: string, ch: string) => ch.toUpperCase())}`;
const channelId = (c: ChannelSpec) => c.id.replace(/\./g, '_');
const messageRef = (m: MessageSpec) => ({ $ref: `#/components/messages/${m.name}` });

function asyncApiDocument(version: string): Json {
  const channels: Json = {};
  const operations: Json = {};
  for (const c of CATALOG) {
    const id = channelId(c);
    const params = Object.fromEntries(Object.entries(c.parameters).map(([k, description]) => [k, { description }]));
    channels[id] = {
      address: c.address,
      title: c.id,
      description: `${c.description} (${c.direction}${c.stream ? `; JetStream stream ${c.stream}` : ''})`,
      ...(Object.keys(params).length ? { parameters: params } : {}),
      messages: { [c.message.name]: messageRef(c.message) },
    };
    if (c.reply) {
      channels[`${id}_reply`] = {
        address: null,
        description: `Reply to ${c.address}: { ok: true, result: ${c.reply.name} } or { ok: false, error: ErrorBody }, on the requester's inbox.`,
        messages: { [`${c.reply.name}Envelope`]: { $ref: `#/components/messages/${c.reply.name}Envelope` } },
      };
    }
    operations[opId(c)] = {
      action: c.action,
      channel: { $ref: `#/channels/${id}` },
      summary: c.direction,
      messages: [{ $ref: `#/channels/${id}/messages/${c.message.name}` }],
      ...(c.reply ? { reply: { channel: { $ref: `#/channels/${id}_reply` }, messages: [{ $ref: `#/channels/${id}_reply/messages/${c.reply.name}Envelope` }] } } : {}),
    };
  }
  const messages: Json = {};
  const schemas: Json = { ErrorBody: jsonSchemaOf(ErrorBody) };
  for (const c of CATALOG) {
    for (const m of c.reply ? [c.message, c.reply] : [c.message]) {
      messages[m.name] = {
        name: m.name,
        title: m.name,
        ...(m.description ? { summary: m.description } : {}),
        contentType: 'application/json',
        payload: { $ref: `#/components/schemas/${m.name}` },
        examples: [{ name: 'example', payload: m.example }],
      };
      schemas[m.name] = jsonSchemaOf(m.schema);
    }
    if (c.reply) {
      messages[`${c.reply.name}Envelope`] = {
        name: `${c.reply.name}Envelope`,
        contentType: 'application/json',
        payload: {
          oneOf: [
            { type: 'object', required: ['ok', 'result'], additionalProperties: false, properties: { ok: { const: true }, result: { $ref: `#/components/schemas/${c.reply.name}` } } },
            { type: 'object', required: ['ok', 'error'], additionalProperties: false, properties: { ok: { const: false }, error: { $ref: '#/components/schemas/ErrorBody' } } },
          ],
        },
        examples: [
          { name: 'ok', payload: { ok: true, result: c.reply.example } },
          { name: 'error', payload: { ok: false, error: { code: 'VALIDATION_FAILED', message: 'invalid request: packages: Required' } } },
        ],
      };
    }
  }
  return {
    asyncapi: '3.0.0',
    info: {
      title: 'Changeover wire',
      version,
      description: [
        'Every NATS subject of Changeover and the messages on it, generated from libs/contracts/src/catalog/catalog.ts.',
        `Do not edit by hand: ${GENERATED_HINT}.`,
        'Written from the control plane\'s side (orchestrator and registry): it sends commands and events and receives reports and requests.',
        `Errors on request/reply subjects carry one of: ${ERROR_CODES.join(', ')}.`,
        'Trace context travels in the NATS headers traceparent and tracestate (W3C).',
      ].join('\n'),
    },
    defaultContentType: 'application/json',
    servers: { local: { host: '127.0.0.1:4222', protocol: 'nats', description: 'A local nats-server with JetStream' } },
    channels,
    operations,
    components: { messages, schemas },
  };
}

/** relative path (from libs/contracts) → file content, for every generated file. */
export function buildArtifacts(version = '0.1.0'): Map<string, string> {
  const files = new Map<string, string>();
  const header = `# GENERATED from src/catalog/catalog.ts — ${GENERATED_HINT}\n`;
  files.set(ASYNCAPI_FILE, header + stringify(asyncApiDocument(version), { aliasDuplicateObjects: false, lineWidth: 0, sortMapEntries: false }));
  for (const m of catalogMessages()) {
    const schema = { $schema: 'http://json-schema.org/draft-07/schema#', $id: `https://changeover.dev/schemas/${m.name}.json`, title: m.name, ...(m.description ? { description: m.description } : {}), ...jsonSchemaOf(m.schema) };
    files.set(`${SCHEMAS_DIR}/${m.name}.json`, `${JSON.stringify(schema, null, 2)}\n`);
  }
  files.set(`${SCHEMAS_DIR}/ErrorBody.json`, `${JSON.stringify({ $schema: 'http://json-schema.org/draft-07/schema#', $id: 'https://changeover.dev/schemas/ErrorBody.json', title: 'ErrorBody', ...jsonSchemaOf(ErrorBody) }, null, 2)}\n`);
  return new Map([...files.entries()].sort(([a], [b]) => (a < b ? -1 : 1)));
}
