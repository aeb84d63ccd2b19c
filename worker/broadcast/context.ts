import { loadConfig, type Config } from "../config.ts";
import { accountPace } from "../account/budget.ts";
import { IvsClient } from "../ivs/client.ts";
import type { Channels } from "./channels.ts";
import type { Registry } from "./registry.ts";

/**
 * What the Broadcast object's modules share: its storage, configuration, IVS
 * client and sockets. The object builds it once; each module takes it in its
 * constructor, so a module is tested with a context of its own.
 */
export interface BroadcastContext {
  /** The broadcast id (the object's name). */
  readonly id: string;
  readonly env: Env;
  readonly registry: Registry;
  readonly config: Config;
  readonly ivs: IvsClient;
  readonly channels: Channels;
  /** Makes sure the object's alarm fires no later than `at`. */
  arm(at: number): Promise<void>;
}

/** The context of a live object: configuration and the IVS client made on first use, the alarm in storage. */
export class ObjectContext implements BroadcastContext {
  readonly env: Env;
  readonly registry: Registry;
  /** Set by the object once its channels exist (they read the views, which read this context). */
  channels!: Channels;
  readonly #ctx: DurableObjectState;
  #config: Config | undefined;
  #ivs: IvsClient | undefined;

  constructor(ctx: DurableObjectState, env: Env, registry: Registry) {
    this.#ctx = ctx;
    this.env = env;
    this.registry = registry;
  }

  get id(): string {
    const id = this.#ctx.id.name ?? this.registry.state().broadcast_id;
    if (!id) throw new Error("a Broadcast object must be addressed by name");
    return id;
  }

  get config(): Config {
    this.#config ??= loadConfig(this.env);
    return this.#config;
  }

  get ivs(): IvsClient {
    this.#ivs ??= new IvsClient({ ...this.config.ivs, pace: accountPace(this.env, this.config.ivs.controlTps) });
    return this.#ivs;
  }

  async arm(at: number): Promise<void> {
    const current = await this.#ctx.storage.getAlarm();
    if (current === null || current > at) await this.#ctx.storage.setAlarm(at);
  }
}
