import type { Verdict } from '@changeover/contracts';
import type { ProposalAnalysis } from '../affected/affected-processes.js';

// The agent's own vetoes (claim 5): decided from facts, not by asking a process. Pure.

export interface OwnCheckInput {
  processorType: 'x86_64' | 'arm64';
  packages: { name: string; version: string; modules: { name: string; processorType: string; size: number; digest: string }[] }[];
  analysis: Pick<ProposalAnalysis, 'apiProblems'>;
  /** Bytes to fetch (modules not in the local store) and the free bytes left above the floor. */
  bytesNeeded: number;
  bytesFree: number;
  minFreeBytes: number;
}

export const AGENT_PROCESS_ID = 'agent';

export function ownVerdicts(input: OwnCheckInput): Verdict[] {
  const out: Verdict[] = [];
  for (const p of input.packages) {
    if (p.modules.length === 0) {
      out.push({ processId: AGENT_PROCESS_ID, decision: 'veto', reason: 'PROCESSOR_UNSUPPORTED', message: `package ${p.name}@${p.version} has no module for this node (${input.processorType})` });
    }
    for (const m of p.modules) {
      if (m.processorType !== 'any' && m.processorType !== input.processorType) {
        out.push({ processId: AGENT_PROCESS_ID, module: m.name, decision: 'veto', reason: 'PROCESSOR_UNSUPPORTED', message: `module ${m.name} is built for ${m.processorType}, node is ${input.processorType}` });
      }
    }
  }
  for (const problem of input.analysis.apiProblems) {
    out.push({ processId: AGENT_PROCESS_ID, decision: 'veto', reason: 'API_INCOMPATIBLE', message: problem.message.slice(0, 4000) });
  }
  if (input.bytesFree - input.bytesNeeded < input.minFreeBytes) {
    const mb = (n: number) => Math.floor(n / 1048576);
    out.push({
      processId: AGENT_PROCESS_ID,
      decision: 'veto',
      reason: 'INSUFFICIENT_RESOURCES',
      message: `needs ${mb(input.bytesNeeded)} MB, ${mb(input.bytesFree)} MB free, ${mb(input.minFreeBytes)} MB must stay free`,
    });
  }
  return out;
}
