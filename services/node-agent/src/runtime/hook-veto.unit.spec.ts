import { describe, expect, it } from '@jest/globals';
import { hookVeto } from './child-runtime.js';

describe('a failed evaluate hook', () => {
  it('keeps a known veto reason written at the start of its output', () => {
    expect(hookVeto('PROCESS_BUSY: draining an export')).toEqual({ decision: 'veto', reason: 'PROCESS_BUSY', message: 'draining an export' });
    expect(hookVeto('INSUFFICIENT_RESOURCES:no memory')).toEqual({ decision: 'veto', reason: 'INSUFFICIENT_RESOURCES', message: 'no memory' });
  });

  it('vetoes as CUSTOM with the whole output otherwise', () => {
    expect(hookVeto('NOT_A_REASON: x')).toEqual({ decision: 'veto', reason: 'CUSTOM', message: 'NOT_A_REASON: x' });
    expect(hookVeto('busy')).toEqual({ decision: 'veto', reason: 'CUSTOM', message: 'busy' });
    expect(hookVeto('')).toEqual({ decision: 'veto', reason: 'CUSTOM', message: 'evaluate hook failed' });
  });
});
