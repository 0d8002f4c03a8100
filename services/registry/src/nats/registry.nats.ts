import type { NatsConnection } from '@nats-io/transport-node';
import {
  ChangeoverError,
  ClassRecord,
  EnrollNodeReply,
  EnrollNodeRequest,
  GetClassRequest,
  GetPackagesReply,
  GetPackagesRequest,
  HeartbeatReport,
  HelloReport,
  ImportImageReply,
  ImportImageRequest,
  isAgentReportSubject,
  InventoryReport,
  ListNodesReply,
  ListNodesRequest,
  ListPackagesReply,
  ListPackagesRequest,
  parseSubject,
  ProvidedApisReply,
  ProvidedApisRequest,
  PublishPackageReply,
  PublishPackageRequest,
  RevokeNodeReply,
  RevokeNodeRequest,
  SelectModulesReply,
  SelectModulesRequest,
  SetClassRequest,
  subjects,
  type AgentReport,
} from '@changeover/contracts';
import { discardImageUpload, readImageUpload, serveRpc, subscribeValidated, type RateLimit, type RateLimiter, type RpcServer, type ValidatedSubscription } from '@changeover/messaging';
import type { z } from 'zod';
import type { Logger } from '../observability.js';
import { assertStorable } from '../validation/storable.js';
import { enrollNode } from '../nodes/node-identity.js';
import type { Settle } from '../nodes/node.service.js';
import type { RegistryDomain } from '../registry.domain.js';

type Op = Parameters<typeof subjects.registry>[0];

async function importUpload(nc: NatsConnection, d: RegistryDomain, upload: string, log: Logger) {
  try {
    return await d.images.import(readImageUpload(nc, upload));
  } finally {
    await discardImageUpload(nc, upload, log);
  }
}

/** The NATS side: request/reply on changeover.registry.<op> and the agents' reports. One line per operation. */
export function serveRegistryNats(nc: NatsConnection, d: RegistryDomain, opts: { queue: string; maxImageBytes: number; maxMessageBytes: number; enrollLimiter: RateLimiter; helloRate: Omit<RateLimit, 'key'>; logger: Logger }): { stop(): Promise<void>; servers: RpcServer[]; reports: ValidatedSubscription[] } {
  const log = opts.logger;
  const q = { queue: opts.queue, logger: log, maxRequestBytes: opts.maxMessageBytes };
  const big = { ...q, maxRequestBytes: Math.ceil(opts.maxImageBytes * 1.4) + 1024 };
  // Every request is checked storable, and every error answer counted by op and code (malformed ones are counted by serveRpc).
  const rpc = <S extends z.ZodType, Res>(op: Op, schema: S, fn: (r: z.infer<S>) => Promise<Res>, o: typeof q & { resultSchema: z.ZodType<Res>; rateLimit?: RateLimiter }) =>
    serveRpc(
      nc,
      subjects.registry(op),
      schema,
      async (r: z.infer<S>) => {
        try {
          assertStorable(r, `request on ${subjects.registry(op)}`);
          return await fn(r);
        } catch (e) {
          d.counters.inc('registry_rpc_rejected_total', 1, { op, code: e instanceof ChangeoverError ? e.code : 'INTERNAL' });
          throw e;
        }
      },
      o,
    );
  const servers = [
    rpc('select-modules', SelectModulesRequest, (r) => d.selection.select(r), { ...q, resultSchema: SelectModulesReply }),
    rpc('get-packages', GetPackagesRequest, (r) => d.packages.getPackages(r.packages), { ...q, resultSchema: GetPackagesReply }),
    rpc('publish-package', PublishPackageRequest, (r) => d.packages.publish(r), { ...big, resultSchema: PublishPackageReply }),
    rpc('list-packages', ListPackagesRequest, async (r) => ({ packages: await d.packages.list(r.name, r.limit) }), { ...q, resultSchema: ListPackagesReply }),
    rpc('list-nodes', ListNodesRequest, (r) => d.nodes.list(r), { ...q, resultSchema: ListNodesReply }),
    rpc('provided-apis', ProvidedApisRequest, (r) => d.nodes.providedApis(r), { ...q, resultSchema: ProvidedApisReply }),
    rpc('enroll-node', EnrollNodeRequest, (r) => enrollNode(d, r), { ...q, resultSchema: EnrollNodeReply, rateLimit: opts.enrollLimiter }),
    rpc('revoke-node', RevokeNodeRequest, (r) => d.identities.revoke(r.nodeId, { keepLatest: r.keepLatest }), { ...q, resultSchema: RevokeNodeReply }),
    // The request names an upload object: the image is read from the object store chunk by chunk, then the upload is dropped.
    rpc('import-image', ImportImageRequest, (r) => importUpload(nc, d, r.upload, opts.logger), { ...q, resultSchema: ImportImageReply }),
    rpc('get-class', GetClassRequest, (r) => d.classes.get(r.classId), { ...q, resultSchema: ClassRecord }),
    rpc('set-class', SetClassRequest, (r) => d.classes.set(r), { ...q, resultSchema: ClassRecord }),
  ];
  // A node's own request subject (all a confined node may publish to), answered on its inbox.
  servers.push(
    serveRpc(
      nc,
      subjects.agentRequestAny('get-packages'),
      GetPackagesRequest,
      async (r: z.infer<typeof GetPackagesRequest>) => {
        try {
          return await d.packages.getPackages(r.packages);
        } catch (e) {
          d.counters.inc('registry_rpc_rejected_total', 1, { op: 'agent-get-packages', code: e instanceof ChangeoverError ? e.code : 'INTERNAL' });
          throw e;
        }
      },
      { ...q, resultSchema: GetPackagesReply },
    ),
  );
  const nodeOf = (subject: string) => {
    const s = parseSubject(subject);
    return s.kind === 'agent' ? s.nodeId : '';
  };
  const rejected = (report: AgentReport, code: string) => d.counters.inc('registry_agent_reports_rejected_total', 1, { report, code });
  // Every report ends counted once: processed (by the domain), or rejected here with its code, malformed ones included.
  // Handlers hand the domain a callback, not a promise: reports wait for their batch's write as plain entries.
  const report = <S extends z.ZodType>(kind: AgentReport, schema: S, fn: (r: z.infer<S>, nodeId: string, settle: Settle) => void, rateLimit?: RateLimit) =>
    subscribeValidated(
      nc,
      subjects.agentAny(kind),
      schema,
      (r: z.infer<S>, ctx: { subject: string }) => {
        const settle: Settle = (e) => {
          if (e === undefined) return;
          rejected(kind, e instanceof ChangeoverError ? e.code : 'INTERNAL');
          if (!(e instanceof ChangeoverError)) log.error({ err: e, subject: ctx.subject }, 'agent report failed');
        };
        try {
          assertStorable(r, `${kind} report`);
          // The subject's node: the body's when the subject is exactly that node's (no parsing), else parsed.
          const nodeId = (r as { nodeId?: unknown }).nodeId;
          fn(r, typeof nodeId === 'string' && isAgentReportSubject(ctx.subject, nodeId, kind) ? nodeId : nodeOf(ctx.subject), settle);
        } catch (e) {
          settle(e);
        }
      },
      { queue: opts.queue, logger: log, maxBytes: opts.maxMessageBytes, ...(rateLimit ? { rateLimit } : {}), onInvalid: (e) => rejected(kind, e.code) },
    );
  const reports = [
    // Hello is rate limited per node: a node in a restart loop cannot flood the registry.
    report('hello', HelloReport, (r, node, settle) => void d.nodes.hello(node, r).then(() => settle(), (e: unknown) => settle(e ?? new Error('hello refused'))), { ...opts.helloRate, key: nodeOf }),
    report('heartbeat', HeartbeatReport, (r, node) => d.nodes.heartbeat(node, r)),
    report('inventory', InventoryReport, (r, node, settle) => d.nodes.takeInventory(node, r, settle)),
  ];
  return {
    servers,
    reports,
    async stop() {
      await Promise.all([...servers, ...reports].map((s) => s.stop()));
    },
  };
}
