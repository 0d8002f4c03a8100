import type { Module } from '@changeover/contracts';
import type { RunningProcess } from '../affected/affected-processes.js';
import type { EvaluateVerdict, ModuleFetcher, ModuleStore, PrepareResult, ProcessRuntime } from '../core/ports.js';
import type { NodeState, StoredPackage } from '../model/state.js';

// In-memory ports for simulated nodes: no per-process objects, everything derived from the node's
// state and a hash of (node, rollout, attempt), so a node's answers are reproducible and tiny.

export interface SimRates {
  vetoRate: number;
  slowRate: number;
  failRate: number;
}

/** FNV-1a over the parts, mapped to [0, 1). */
export function draw(...parts: string[]): number {
  let h = 0x811c9dc5;
  for (const p of parts) {
    for (let i = 0; i < p.length; i++) {
      h ^= p.charCodeAt(i);
      h = Math.imul(h, 0x01000193);
    }
    h ^= 0x2f;
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) / 0x100000000;
}

const NEVER = new Promise<never>(() => undefined);
export const SIM_APP = 'sim-app';

const runningOf = new WeakMap<StoredPackage[], RunningProcess[]>();
const targetKeys = new WeakMap<StoredPackage[], string>();
const RESIDENTS: RunningProcess[] = [{ processId: SIM_APP, module: SIM_APP, packages: [] }];

export class SimRuntime implements ProcessRuntime {
  constructor(
    private readonly nodeId: string,
    private readonly rates: SimRates,
    private readonly state: () => NodeState,
  ) {}

  /** Derived from the active set alone, so nodes sharing an (interned) set share the list (read-only). */
  running(): RunningProcess[] {
    const active = this.state().active;
    let out = runningOf.get(active);
    if (!out) {
      out = [];
      for (const p of active) for (const m of p.modules) out.push({ processId: `${m.name}@${m.version}`, module: m.name, packages: [p.manifest.name] });
      runningOf.set(active, out);
    }
    return out;
  }

  residents(): RunningProcess[] {
    return RESIDENTS;
  }

  /** Answers at once (a slow process never does); the core takes an answer at hand without arming a deadline timer. */
  evaluate(processId: string, e: { rolloutId: string; attempt: number }): EvaluateVerdict | Promise<EvaluateVerdict> {
    const u = draw(this.nodeId, e.rolloutId, String(e.attempt), processId);
    if (u < this.rates.vetoRate) return { decision: 'veto', reason: 'PROCESS_BUSY', message: `${processId} is busy (simulated)`, retryAfterMs: 5000 };
    if (u < this.rates.vetoRate + this.rates.slowRate) return NEVER;
    return { decision: 'accept' };
  }

  prepare(): PrepareResult {
    return { ready: true };
  }

  notifyChanged(): void {}

  async startCandidates(target: StoredPackage[]): Promise<{ ok: true } | { ok: false; output: string }> {
    let key = targetKeys.get(target);
    if (key === undefined) targetKeys.set(target, (key = target.map((p) => `${p.manifest.name}@${p.manifest.version}`).join(',')));
    if (draw(this.nodeId, 'health', key) < this.rates.failRate) return { ok: false, output: 'GET /health → 503 Service Unavailable (simulated failure)' };
    return { ok: true };
  }

  async switchOver(): Promise<void> {}
  async discardCandidates(): Promise<void> {}
  async restart(): Promise<{ ok: true }> {
    return { ok: true };
  }
  async apply(): Promise<void> {}
  async stopAll(): Promise<void> {}
}

/** The simulated store keeps nothing beside the node's state: a blob is "local" when a kept set names it. */
export class SimStore implements ModuleStore {
  constructor(private readonly state: () => NodeState) {}
  async load(): Promise<NodeState> {
    return this.state();
  }
  save(): void {}
  hasBlob(digest: string): boolean {
    const s = this.state();
    return holds(s.active, digest) || holds(s.previous, digest) || holds(s.kept, digest) || (!!s.journal && holds(s.journal.to, digest));
  }
  async freeBytes(): Promise<number> {
    return 64 * 1024 ** 3;
  }
}

function holds(set: StoredPackage[], digest: string): boolean {
  for (const p of set) for (const m of p.modules) if (m.digest === digest) return true;
  return false;
}

/** Pretends to transfer the blob: the figure reported is the module's declared size. */
export const simFetcher: ModuleFetcher = {
  fetch(m: Module) {
    return m.size;
  },
};
