import type { BroadcastContext } from "./context.ts";
import { iso } from "./registry.ts";

/**
 * A broadcast's sessions: idle until its first publisher token, live until it
 * ends, and live again with a fresh start time if a publisher comes back. The
 * Directory object lists it for the landing page and the cron.
 */
export class Lifecycle {
  readonly #c: BroadcastContext;

  constructor(context: BroadcastContext) {
    this.#c = context;
  }

  /** Starts a new session unless one is live. */
  async begin(now: number): Promise<void> {
    const { registry } = this.#c;
    if (registry.state().status === "live") return;
    registry.setState({ broadcast_id: this.#c.id, status: "live", started_at: now, ended_at: null });
    registry.event("started", {});
    await this.#directory("live", now);
  }

  /** Marks the session ended and tells the studio; the stages are deleted by the caller. False if it was not live. */
  async end(now: number): Promise<boolean> {
    const { registry, channels } = this.#c;
    if (registry.state().status !== "live") return false;
    registry.setState({ status: "ended", ended_at: now });
    if (registry.publisher()) registry.setPublisherState("stopped", now);
    registry.event("ended", {});
    channels.toBroadcasters({ type: "ended", data: { timestamp: iso(now) } });
    await this.#directory("ended", now);
    return true;
  }

  async #directory(status: "live" | "ended", now: number): Promise<void> {
    await this.#c.env.DIRECTORY.getByName("directory").record({
      broadcastId: this.#c.id,
      status,
      startedAt: this.#c.registry.state().started_at ?? now,
      endedAt: status === "ended" ? now : null,
    });
  }
}
