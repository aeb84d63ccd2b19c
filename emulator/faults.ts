import { z } from "zod";
import { AwsError, statusOfErrorType } from "./errors.ts";

/**
 * Fault injection, so tests and `npm run dev -- --ivs-latency 50` can see how
 * Fanout behaves when IVS is slow, flaky or refusing: added latency on every
 * operation, a random error rate, and rules that answer a given error for a
 * given operation (a number of times, or until cleared).
 */

export const FaultRule = z.object({
  /** An operation name, or "*" for every operation. */
  operation: z.string().default("*"),
  errorType: z.string().min(1),
  status: z.number().int().min(400).max(599).optional(),
  message: z.string().optional(),
  /** How many calls it answers before it is spent; absent: until cleared (or `forMs` passes). */
  times: z.number().int().min(1).optional(),
  /** For how long from now it answers (a quota refused for 30 s, deletes failing for a minute). */
  forMs: z.number().int().min(1).optional(),
  /** When it stops answering (ms since the epoch); set from `forMs` when the rule is installed. */
  until: z.number().int().optional(),
});

/** A call held back before IVS answers it (and carries it out): what a client's timeout sees. */
export const FaultDelay = z.object({
  operation: z.string().default("*"),
  ms: z.number().int().min(0).max(60_000),
  times: z.number().int().min(1).optional(),
});

export const Faults = z.object({
  latencyMs: z.number().min(0).max(60_000).default(0),
  errorRate: z.number().min(0).max(1).default(0),
  /** The error a random failure answers with. */
  errorType: z.string().default("InternalServerException"),
  /** A fraction of calls (0..1) that stall for `spikeMs` first: the latency spikes of a congested region. */
  spikeRate: z.number().min(0).max(1).default(0),
  spikeMs: z.number().min(0).max(60_000).default(2_000),
  rules: z.array(FaultRule).default([]),
  delays: z.array(FaultDelay).default([]),
});
export type Faults = z.infer<typeof Faults>;

export const noFaults = (): Faults => Faults.parse({});

/** Faults as installed now: a rule given `forMs` answers until that long from `now`. */
export function installFaults(input: unknown, now = Date.now()): ReturnType<typeof Faults.safeParse> {
  const parsed = Faults.safeParse(input);
  if (parsed.success)
    for (const rule of parsed.data.rules)
      if (rule.forMs !== undefined && rule.until === undefined) rule.until = now + rule.forMs;
  return parsed;
}

/** Waits for the configured latency, then throws the injected error, if any, for this call. */
export async function applyFaults(faults: Faults, operation: string, random = Math.random): Promise<void> {
  let stall = faults.latencyMs + (faults.spikeRate > 0 && random() < faults.spikeRate ? faults.spikeMs : 0);
  const delay = faults.delays.findIndex((d) => d.operation === "*" || d.operation === operation);
  if (delay >= 0) {
    stall += faults.delays[delay]!.ms;
    const left = faults.delays[delay]!.times;
    if (left !== undefined) {
      if (left <= 1) faults.delays.splice(delay, 1);
      else faults.delays[delay]!.times = left - 1;
    }
  }
  if (stall > 0) await new Promise((resolve) => setTimeout(resolve, stall));
  const now = Date.now();
  faults.rules = faults.rules.filter((rule) => rule.until === undefined || rule.until > now);
  const index = faults.rules.findIndex((rule) => rule.operation === "*" || rule.operation === operation);
  if (index >= 0) {
    const rule = faults.rules[index]!;
    if (rule.times !== undefined) {
      rule.times -= 1;
      if (rule.times === 0) faults.rules.splice(index, 1);
    }
    throw injected(rule.errorType, rule.status, rule.message ?? `Injected ${rule.errorType} for ${operation}.`);
  }
  if (faults.errorRate > 0 && random() < faults.errorRate) {
    throw injected(faults.errorType, undefined, `Injected random ${faults.errorType} for ${operation}.`);
  }
}

function injected(type: string, status: number | undefined, message: string): AwsError {
  return new AwsError(type, status ?? statusOfErrorType[type] ?? 500, message);
}

/** Per-operation requests-per-second limits, answered with 429 as AWS throttles. */
export class RateLimiter {
  readonly #windows = new Map<string, { second: number; count: number }>();
  limits: Record<string, number>;

  constructor(limits: Record<string, number> = {}) {
    this.limits = limits;
  }

  check(operation: string, now = Date.now()): void {
    const limit = this.limits[operation];
    if (limit === undefined) return;
    const second = Math.floor(now / 1000);
    const window = this.#windows.get(operation);
    if (!window || window.second !== second) {
      this.#windows.set(operation, { second, count: 1 });
      return;
    }
    if (window.count >= limit) throw new AwsError("ThrottlingException", 429, "Rate exceeded");
    window.count += 1;
  }
}

/**
 * The rate quotas IVS Real-Time documents, per operation and per account, not adjustable
 * (RealTimeUserGuide/service-quotas, "API Call Rate Quotas"): 50 TPS for CreateParticipantToken,
 * 5 TPS for every other stage operation, 10 TPS for the tag operations.
 */
export const awsRateQuotas: Record<string, number> = {
  CreateParticipantToken: 50,
  CreateStage: 5,
  DeleteStage: 5,
  DisconnectParticipant: 5,
  GetParticipant: 5,
  GetStage: 5,
  GetStageSession: 5,
  ListParticipantEvents: 5,
  ListParticipants: 5,
  ListStageSessions: 5,
  ListStages: 5,
  UpdateStage: 5,
  TagResource: 10,
  UntagResource: 10,
  ListTagsForResource: 10,
  ImportPublicKey: 3,
  GetPublicKey: 3,
  ListPublicKeys: 3,
  DeletePublicKey: 3,
};
