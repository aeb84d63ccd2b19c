/**
 * Delay before retry `attempt` (0-based): "full jitter" exponential backoff,
 * a random wait in [0, min(cap, base * 2^attempt)), so that many isolates
 * retrying together spread out instead of hitting IVS in lockstep.
 */
export function backoffDelay(
  attempt: number,
  options: { baseMs?: number; capMs?: number } = {},
  random = Math.random,
): number {
  const base = options.baseMs ?? 100;
  const cap = options.capMs ?? 5_000;
  return Math.floor(random() * Math.min(cap, base * 2 ** attempt));
}
