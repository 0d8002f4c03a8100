import type { Description } from './event.describer.js';

/** Slack incoming-webhook payload: `text` for notifications, blocks for the readable message. */
export function slackMessage(d: Description, footer: string) {
  const body = d.lines.map((l) => `• ${l}`).join('\n');
  const blocks: unknown[] = [
    { type: 'header', text: { type: 'plain_text', text: d.title.slice(0, 150) } },
    { type: 'section', text: { type: 'mrkdwn', text: body.slice(0, 2900) || '_no details_' } },
  ];
  if (d.actions.length) blocks.push({ type: 'section', text: { type: 'mrkdwn', text: `*To act:*\n${d.actions.map((a) => `\`${a}\``).join('\n')}` } });
  blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: footer }] });
  return { text: `${d.title}\n${body}`.slice(0, 3000), blocks };
}

/** Plain-text e-mail body with the same content. */
export function emailText(d: Description, footer: string): string {
  const parts = [d.title, '', ...d.lines.map((l) => `- ${l}`)];
  if (d.actions.length) parts.push('', 'To act:', ...d.actions.map((a) => `  ${a}`));
  parts.push('', footer);
  return parts.join('\n');
}
