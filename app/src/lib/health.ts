import type { BroadcastEntry, Envelope, Health } from "../../../protocol/api.ts";

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

/** Recent broadcasts for the landing page (live first); empty when the API cannot say. */
export async function fetchRecent(fetcher: typeof fetch = fetch): Promise<BroadcastEntry[]> {
  try {
    const body = (await (await fetcher("/api/broadcasts")).json()) as Envelope<{ broadcasts: BroadcastEntry[] }>;
    return body.success ? body.data.broadcasts : [];
  } catch {
    return [];
  }
}
