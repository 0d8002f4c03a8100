import nodemailer, { type Transporter } from 'nodemailer';
import { errorText } from '../log.js';
import type { Channel, DeliveryJob, SendResult } from './channel.js';
import { describeJob, footerOf } from './event.describer.js';
import { emailText } from './message.format.js';

/** smtp://user:pass@host:port (STARTTLS when offered) or smtps:// (TLS from the start), with deadlines. */
export function smtpOptions(url: string, timeoutMs: number) {
  const u = new URL(url);
  const secure = u.protocol === 'smtps:';
  return {
    host: u.hostname,
    port: u.port ? Number(u.port) : secure ? 465 : 587,
    secure,
    ...(u.username ? { auth: { user: decodeURIComponent(u.username), pass: decodeURIComponent(u.password) } } : {}),
    connectionTimeout: timeoutMs,
    greetingTimeout: timeoutMs,
    socketTimeout: timeoutMs,
  };
}

/** E-mail over SMTP; a 5xx answer from the server is permanent, anything else is retried. */
export class EmailChannel implements Channel {
  private readonly transport: Transporter | null;

  constructor(
    smtpUrl: string | undefined,
    private readonly from: string,
    timeoutMs: number,
  ) {
    this.transport = smtpUrl ? nodemailer.createTransport(smtpOptions(smtpUrl, timeoutMs)) : null;
  }

  get configured(): boolean {
    return this.transport !== null;
  }

  async send(job: DeliveryJob): Promise<SendResult> {
    if (job.channel.type !== 'email') throw new TypeError(`email channel given a ${job.channel.type} subscription`);
    if (!this.transport) return { ok: false, permanent: true, statusCode: null, error: 'SMTP_URL is not configured' };
    const d = describeJob(job);
    try {
      const info = await this.transport.sendMail({
        from: this.from,
        to: job.channel.to,
        subject: `[changeover] ${d.title}`.slice(0, 200),
        text: emailText(d, footerOf(job)),
        headers: { 'X-Changeover-Event-Id': job.event.id, 'X-Changeover-Event-Type': job.event.type },
      });
      const code = Number(/^(\d{3})/.exec(String(info.response ?? ''))?.[1] ?? 250);
      return { ok: true, permanent: false, statusCode: code, error: null };
    } catch (e) {
      const code = (e as { responseCode?: number }).responseCode ?? null;
      return { ok: false, permanent: code !== null && code >= 500, statusCode: code, error: errorText(e) };
    }
  }

  close(): void {
    this.transport?.close();
  }
}
