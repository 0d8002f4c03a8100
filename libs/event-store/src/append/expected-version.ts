import { ChangeoverError } from '@changeover/contracts';
import type { ExpectedVersion } from '../types.js';

/** Does a stream whose last position is `actual` (0 = no stream) satisfy `expected`? */
export function matchesExpectedVersion(expected: ExpectedVersion, actual: number): boolean {
  switch (expected) {
    case 'any':
      return true;
    case 'no-stream':
      return actual === 0;
    case 'stream-exists':
      return actual > 0;
    default:
      return expected === actual;
  }
}

/** The typed conflict every caller can act on: re-read the stream and decide again. */
export function versionConflict(streamId: string, expected: ExpectedVersion, actual: number): ChangeoverError {
  return new ChangeoverError('VERSION_CONFLICT', `stream ${streamId} is at version ${actual}, expected ${String(expected)}`, { streamId, expected, actual });
}
