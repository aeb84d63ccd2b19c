import type { BroadcastEntry, Health } from "#protocol/api.ts";
import { deploymentApi, unwrap } from "#lib/api/client.ts";

/** What the landing page shows of the Worker's health: the API envelope, unwrapped. */
export type HealthState = { kind: "loading" } | { kind: "ok"; health: Health } | { kind: "error"; message: string };

export async function fetchHealth(fetcher?: typeof fetch): Promise<HealthState> {
  try {
    return { kind: "ok", health: await unwrap(deploymentApi({ fetch: fetcher }).GET("/health")) };
  } catch (error) {
    return { kind: "error", message: (error as Error).message };
  }
}

/**
 * Recent broadcasts for the landing page (live first), for the operator only: the list needs the
 * admin key (broadcast ids are share links). Empty without the key, or when the API cannot say.
 */
export async function fetchRecent(adminKey: string | undefined, fetcher?: typeof fetch): Promise<BroadcastEntry[]> {
  if (!adminKey) return [];
  return unwrap(deploymentApi({ key: () => adminKey, fetch: fetcher }).GET("/broadcasts")).then(
    (data) => data.broadcasts,
    // The landing page works without the list: an unreachable API shows in the health line.
    () => [],
  );
}
