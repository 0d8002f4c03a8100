import { describe, expect, it } from '@jest/globals';
import { sample } from '../testing/events.js';
import { describeEvent } from './event.describer.js';
import { emailText, slackMessage } from './message.format.js';

describe('readable messages', () => {
  it('a veto says which node, which process, why, when to retry and how to force', () => {
    const d = describeEvent('rollout.blocked', sample.blocked('r-42'));
    expect(d.title).toBe('Rollout r-42 is blocked: 1 veto on 1 node');
    expect(d.lines[0]).toBe('node node-7: process billing-worker (module billing) vetoed with PROCESS_BUSY: closing the month (retry after 60s)');
    expect(d.actions[0]).toBe('changeover rollout force r-42 --reason "…"');
  });

  it('a dependency discrepancy names the node, the package and the missing API', () => {
    const d = describeEvent('rollout.dependency-discrepancy', sample.discrepancy());
    expect(d.lines[0]).toBe('node node-3: package billing needs API auth-api@^2, which is missing (API_UNPROVIDED)');
  });

  it('a refused cluster-version adjustment lists the nodes and groups in the way', () => {
    const d = describeEvent('cluster-version.adjust-refused', sample.refused());
    expect(d.lines).toEqual(['node node-9: NODE_NOT_ACTIVE: no heartbeat for 5 minutes', 'group orders: GROUP_PARTITIONED: members disagree (members a, b)']);
  });

  it('the Slack payload has a text fallback and blocks; the e-mail carries the same content', () => {
    const d = describeEvent('rollout.paused', sample.paused());
    const slack = slackMessage(d, 'event e1');
    expect(slack.text).toContain('paused by its error threshold');
    expect(JSON.stringify(slack.blocks)).toContain('changeover rollout resume r1');
    const mail = emailText(d, 'event e1');
    expect(mail).toContain('why: error threshold 10% crossed');
    expect(mail).toContain('To act:');
  });
});
