import { connect } from '@nats-io/transport-node';

// Answers every floor request at once: N "nodes" behind one connection and one wildcard
// subscription, as the simulated fleet runs them.
const nc = await connect({ servers: process.argv[2] });
const reply = new TextEncoder().encode(JSON.stringify({ decision: 'accept', verdicts: [] }));
nc.subscribe('floor.node.*.propose', { callback: (_err, msg) => {
  msg.respond(reply);
} });
await nc.flush();
process.send?.('ready');
