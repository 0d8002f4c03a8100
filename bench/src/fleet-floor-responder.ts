import { connect } from '@nats-io/transport-node';
import { CommitCommand, decode, ProposeCommand } from '@changeover/contracts';

// One slice of the floor's fleet: `count` nodes `<prefix>-1…` behind one connection, as a simulated
// fleet process runs them. A class proposal is parsed once and answered with a vote from every node,
// a class commit with a completion from every node; each report is the real one's text with the
// node's own id, encoded when sent, and written in batches as the simulated fleet writes its reports.
const [natsUrl, root, classId, prefix, countText] = process.argv.slice(2) as [string, string, string, string, string];
const count = Number(countText);
const nc = await connect({ servers: natsUrl });

type Template = { text: string; nodeId: string };
let vote: string[] = [];
let progress: string[] = [];
const partsOf = (t: Template) => t.text.split(`"nodeId":${JSON.stringify(t.nodeId)}`);
process.on('message', (m: { vote: Template; progress: Template }) => {
  vote = partsOf(m.vote);
  progress = partsOf(m.progress);
  process.send?.('ready');
});

/** Every node's report, 64 KiB or so at a time, the event loop turning between batches so the socket drains. */
async function answer(kind: 'vote' | 'progress', parts: string[]): Promise<void> {
  let held = 0;
  for (let i = 1; i <= count; i++) {
    const nodeId = `${prefix}-${i}`;
    const body = Buffer.from(parts.join(`"nodeId":${JSON.stringify(nodeId)}`), 'utf8');
    nc.publish(`${root}.agent.${nodeId}.${kind}`, body);
    held += body.length;
    if (held >= 64 * 1024) {
      held = 0;
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }
}

nc.subscribe(`${root}.class.${classId}.propose`, { callback: (_err, msg) => {
  decode(ProposeCommand, msg.data);
  void answer('vote', vote);
} });
nc.subscribe(`${root}.class.${classId}.commit`, { callback: (_err, msg) => {
  decode(CommitCommand, msg.data);
  void answer('progress', progress);
} });
await nc.flush();
process.send?.('ready');
