import { readFileSync } from 'node:fs';
import { z } from 'zod';

/** NATS_CREDS of a service: the path of a readable NATS .creds file (a user JWT and its nkey seed). */
export const NatsCredsFile = z
  .string()
  .min(1)
  .refine((path) => {
    try {
      const text = readFileSync(path, 'utf8');
      return text.includes('BEGIN NATS USER JWT') && text.includes('BEGIN USER NKEY SEED');
    } catch {
      return false;
    }
  }, 'must be a readable NATS .creds file');
