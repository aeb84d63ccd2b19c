import { DurableObject } from "cloudflare:workers";
import { IvsError } from "../ivs/error.ts";

/**
 * The account's budget for the IVS operations limited to 5 requests a second per
 * account (PACED_OPERATIONS in ivs/client.ts): one object per deployment hands
 * out turns, spaced `1000 / tps` ms apart per operation, to every Broadcast object
 * and the cron. A caller whose turn is more than `maxWaitMs` away gets no turn
 * and backs off as if IVS had throttled it, so a queue of deletions never holds
 * an object's serial queue for long. In memory only: after a restart the budget
 * starts empty, which at worst lets one second's worth through at once, and IVS's
 * own 429 (retried) is still the limit.
 */
export class AccountBudget extends DurableObject<Env> {
  readonly #nextTurn = new Map<string, number>();

  /** Reserves the next turn for `operation`: how long to wait for it, or `busy` when that is too long. */
  reserve(input: { operation: string; tps: number; maxWaitMs: number }): { waitMs: number } | { busyMs: number } {
    const now = Date.now();
    const turn = Math.max(now, this.#nextTurn.get(input.operation) ?? 0);
    const waitMs = turn - now;
    if (waitMs > input.maxWaitMs) return { busyMs: waitMs };
    this.#nextTurn.set(input.operation, turn + 1000 / input.tps);
    return { waitMs };
  }
}

/** The longest an IVS call waits for its turn before it counts as throttled. */
const MAX_WAIT_MS = 4_000;

/** The IVS client's `pace` for a deployment: wait for a turn from the account's budget. */
export function accountPace(env: Env, tps: number): (operation: string) => Promise<void> {
  return async (operation) => {
    let answer: { waitMs: number } | { busyMs: number };
    try {
      answer = await env.ACCOUNT_BUDGET.getByName("account").reserve({ operation, tps, maxWaitMs: MAX_WAIT_MS });
    } catch (error) {
      // The budget is a courtesy to the account; IVS's own 429 is the limit. Never fail a call for it.
      console.error(`account budget unavailable: ${(error as Error).message}`);
      return;
    }
    if ("busyMs" in answer)
      throw new IvsError(operation, "ThrottlingException", 429, `the account's ${tps} TPS budget is spoken for`);
    if (answer.waitMs > 0) await new Promise((resolve) => setTimeout(resolve, answer.waitMs));
  };
}
