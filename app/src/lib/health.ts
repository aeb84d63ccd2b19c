import type { Envelope, Health } from "../../../protocol/api.ts";

/** What the landing page shows of the Worker's health: the API envelope, unwrapped. */
export type HealthState = { kind: "loading" } | { kind: "ok"; health: Health } | { kind: "error"; message: string };

export async function fetchHealth(fetcher: typeof fetch = fetch): Promise<HealthState> {
  try {
    const response = await fetcher("/api/health");
    const body = (await response.json()) as Envelope<Health>;
    return body.success ? { kind: "ok", health: body.data } : { kind: "error", message: body.error.message };
  } catch {
    return { kind: "error", message: "The Fanout API is not reachable." };
  }
}
