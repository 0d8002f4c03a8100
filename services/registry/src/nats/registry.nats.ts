import type { NatsConnection } from '@nats-io/transport-node';
import {
  ChangeoverError,
  ClassRecord,
  EnrollNodeRequest,
  GetClassRequest,
  GetPackagesReply,
  GetPackagesRequest,
  HeartbeatReport,
  HelloReport,
  ImportImageReply,
  ImportImageRequest,
  InventoryReport,
  ListNodesReply,
  ListNodesRequest,
  ListPackagesReply,
  ListPackagesRequest,
  NodeRecord,
  parseSubject,
  PublishPackageReply,
  PublishPackageRequest,
  SelectModulesReply,
  SelectModulesRequest,
  SetClassRequest,
  subjects,
  type AgentReport,
} from '@changeover/contracts';
import { serveRpc, subscribeValidated, type RpcServer, type ValidatedSubscription } from '@changeover/messaging';
import type { Logger } from '../observability.js';
import type { RegistryDomain } from '../registry.domain.js';

/** The NATS side: request/reply on changeover.registry.<op> and the agents' reports. One line per operation. */
export function serveRegistryNats(nc: NatsConnection, d: RegistryDomain, opts: { queue: string; maxImageBytes: number; logger: Logger }): { stop(): Promise<void>; servers: RpcServer[]; reports: ValidatedSubscription[] } {
  const q = { queue: opts.queue, logger: opts.logger };
  const big = { ...q, maxRequestBytes: Math.ceil(opts.maxImageBytes * 1.4) + 1024 };
  const servers = [
    serveRpc(nc, subjects.registry('select-modules'), SelectModulesRequest, (r) => d.selection.select(r), { ...q, resultSchema: SelectModulesReply }),
    serveRpc(nc, subjects.registry('get-packages'), GetPackagesRequest, (r) => d.packages.getPackages(r.packages), { ...q, resultSchema: GetPackagesReply }),
    serveRpc(nc, subjects.registry('publish-package'), PublishPackageRequest, (r) => d.packages.publish(r), { ...big, resultSchema: PublishPackageReply }),
    serveRpc(nc, subjects.registry('list-packages'), ListPackagesRequest, async (r) => ({ packages: await d.packages.list(r.name, r.limit) }), { ...q, resultSchema: ListPackagesReply }),
    serveRpc(nc, subjects.registry('list-nodes'), ListNodesRequest, (r) => d.nodes.list(r), { ...q, resultSchema: ListNodesReply }),
    serveRpc(nc, subjects.registry('enroll-node'), EnrollNodeRequest, (r) => d.nodes.enroll(r), { ...q, resultSchema: NodeRecord }),
    serveRpc(nc, subjects.registry('import-image'), ImportImageRequest, (r) => d.images.import(Buffer.from(r.imageBase64, 'base64')), { ...big, resultSchema: ImportImageReply }),
    serveRpc(nc, subjects.registry('get-class'), GetClassRequest, (r) => d.classes.get(r.classId), { ...q, resultSchema: ClassRecord }),
    serveRpc(nc, subjects.registry('set-class'), SetClassRequest, (r) => d.classes.set(r), { ...q, resultSchema: ClassRecord }),
  ];
  const nodeOf = (subject: string) => {
    const s = parseSubject(subject);
    return s.kind === 'agent' ? s.nodeId : '';
  };
  const agent = (report: AgentReport) => subjects.agentAny(report);
  // A typed rejection is already counted and logged by the domain; only unexpected failures go on to the subscription.
  const counted =
    <R>(fn: (r: R, nodeId: string) => unknown) =>
    async (r: R, ctx: { subject: string }) => {
      try {
        await fn(r, nodeOf(ctx.subject));
      } catch (e) {
        if (!(e instanceof ChangeoverError)) throw e;
      }
    };
  const reports = [
    subscribeValidated(nc, agent('hello'), HelloReport, counted((r, node) => d.nodes.hello(node, r)), q),
    subscribeValidated(nc, agent('heartbeat'), HeartbeatReport, counted((r, node) => d.nodes.heartbeat(node, r)), q),
    subscribeValidated(nc, agent('inventory'), InventoryReport, counted((r, node) => d.nodes.inventory(node, r)), q),
  ];
  return {
    servers,
    reports,
    async stop() {
      await Promise.all([...servers, ...reports].map((s) => s.stop()));
    },
  };
}
