/**
 * What the emulator saw, for a chaos run's report (scripts/chaos.ts) and for tests:
 * every call per operation and per second (throttled and failed ones too), and
 * every stage ever created with its tags and when it was deleted. In memory only,
 * the last hour of calls.
 */

export interface OperationMetrics {
  calls: number;
  throttled: number;
  failed: number;
  /** The most calls of this operation that arrived in one second (throttled ones included). */
  peakPerSecond: number;
  /** The most calls of this operation that were served in one second. */
  peakServedPerSecond: number;
}

export interface StageHistory {
  arn: string;
  tags: Record<string, string>;
  createdAt: string;
  deletedAt: string | null;
}

const KEEP_SECONDS = 3_600;

export class Metrics {
  readonly #seconds = new Map<string, Map<number, { arrived: number; served: number }>>();
  readonly #totals = new Map<string, { calls: number; throttled: number; failed: number }>();
  stages: StageHistory[] = [];

  record(operation: string, status: number, now = Date.now()): void {
    const second = Math.floor(now / 1000);
    const perSecond = this.#seconds.get(operation) ?? new Map<number, { arrived: number; served: number }>();
    this.#seconds.set(operation, perSecond);
    const bucket = perSecond.get(second) ?? { arrived: 0, served: 0 };
    bucket.arrived++;
    if (status < 400) bucket.served++;
    perSecond.set(second, bucket);
    for (const old of perSecond.keys()) if (old < second - KEEP_SECONDS) perSecond.delete(old);
    const total = this.#totals.get(operation) ?? { calls: 0, throttled: 0, failed: 0 };
    total.calls++;
    if (status === 429) total.throttled++;
    else if (status >= 400) total.failed++;
    this.#totals.set(operation, total);
  }

  stageCreated(arn: string, tags: Record<string, string>): void {
    this.stages.push({ arn, tags, createdAt: new Date().toISOString(), deletedAt: null });
  }

  stageDeleted(arn: string): void {
    const entry = this.stages.find((s) => s.arn === arn && s.deletedAt === null);
    if (entry) entry.deletedAt = new Date().toISOString();
  }

  view(): { operations: Record<string, OperationMetrics>; stages: StageHistory[] } {
    const operations: Record<string, OperationMetrics> = {};
    for (const [operation, total] of this.#totals) {
      const seconds = [...(this.#seconds.get(operation)?.values() ?? [])];
      operations[operation] = {
        ...total,
        peakPerSecond: Math.max(0, ...seconds.map((s) => s.arrived)),
        peakServedPerSecond: Math.max(0, ...seconds.map((s) => s.served)),
      };
    }
    return { operations, stages: this.stages };
  }

  reset(): void {
    this.#seconds.clear();
    this.#totals.clear();
    this.stages = [];
  }
}
