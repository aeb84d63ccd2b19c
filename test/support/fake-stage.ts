import {
  Emitter,
  type MediaStage,
  type StageEventMap,
  type StageEvent,
  type StageStrategy,
} from "../../app/src/lib/media/stage.ts";
import type { SocketLike } from "../../app/src/lib/socket.ts";
import type { Clock } from "../../app/src/lib/timing.ts";

/**
 * Test doubles for the pages' controllers: a `Stage` with the SDK's
 * interface that records what is asked of it, a socket, and a clock moved
 * by hand.
 */

/** A JWT-shaped token with the claims the pages read (unsigned: the pages never verify). */
export function fakeToken(claims: { jti: string; resource: string; iat: number; exp: number; user_id?: string }) {
  const b64 = (value: object) => Buffer.from(JSON.stringify(value)).toString("base64url");
  return `${b64({ alg: "ES384", typ: "JWT" })}.${b64({ events_url: "ws://127.0.0.1:1/events", ...claims })}.sig`;
}

export class FakeStage implements MediaStage {
  readonly transport = "local";
  readonly calls: string[] = [];
  joined = false;
  left = false;
  exchanged: string[] = [];
  #events = new Emitter();
  readonly token: string;
  readonly strategy: StageStrategy;
  constructor(token: string, strategy: StageStrategy) {
    this.token = token;
    this.strategy = strategy;
  }
  async join(): Promise<void> {
    this.calls.push("join");
    this.joined = true;
    this.emit("stageConnectionStateChanged", "connected");
  }
  leave(): void {
    this.calls.push("leave");
    this.left = true;
  }
  refreshStrategy(): void {
    this.calls.push("refreshStrategy");
  }
  async exchangeToken(token: string): Promise<void> {
    this.calls.push("exchangeToken");
    this.exchanged.push(token);
  }
  on<E extends StageEvent>(event: E, listener: (...args: StageEventMap[E]) => void): void {
    this.#events.on(event, listener);
  }
  off<E extends StageEvent>(event: E, listener: (...args: StageEventMap[E]) => void): void {
    this.#events.off(event, listener);
  }
  emit<E extends StageEvent>(event: E, ...args: StageEventMap[E]): void {
    this.#events.emit(event, ...args);
  }
}

/** Every stage the controller opened, in order, with a global log of joins and leaves. */
export function stageFactory() {
  const stages: FakeStage[] = [];
  const order: string[] = [];
  let failing = 0;
  /** The next `n` joins fail, as a join does when the network is gone. */
  const failNextJoins = (n: number) => void (failing = n);
  const open = async (token: string, strategy: StageStrategy) => {
    const stage = new FakeStage(token, strategy);
    const join = stage.join.bind(stage);
    const leave = stage.leave.bind(stage);
    stage.join = async () => {
      order.push(`join ${stages.indexOf(stage)}`);
      if (failing > 0) {
        failing--;
        throw new Error("Could not connect to the stage.");
      }
      await join();
    };
    stage.leave = () => {
      order.push(`leave ${stages.indexOf(stage)}`);
      leave();
    };
    stages.push(stage);
    return stage;
  };
  return { stages, order, open, failNextJoins };
}

export class FakeSocket implements SocketLike {
  readyState = 0;
  readonly sent: string[] = [];
  closedWith?: number;
  #target = new EventTarget();
  send(data: string): void {
    this.sent.push(data);
  }
  close(code = 1000): void {
    this.closedWith = code;
    this.readyState = 3;
  }
  addEventListener(type: string, listener: (event: never) => void): void {
    this.#target.addEventListener(type, (event) => listener(event as never));
  }
  open(): void {
    this.readyState = 1;
    this.#target.dispatchEvent(new Event("open"));
  }
  receive(message: object | string): void {
    const data = typeof message === "string" ? message : JSON.stringify(message);
    this.#target.dispatchEvent(new MessageEvent("message", { data }));
  }
  drop(code = 1006): void {
    this.readyState = 3;
    this.#target.dispatchEvent(Object.assign(new Event("close"), { code }));
  }
  json(): { type: string; data?: Record<string, unknown> }[] {
    return this.sent.filter((s) => s.startsWith("{")).map((s) => JSON.parse(s));
  }
}

/** Timers that fire only when the test moves the clock. */
export class ManualClock implements Clock {
  #now: number;
  #timers = new Map<number, { at: number; fn: () => void }>();
  #next = 1;
  constructor(start = Date.UTC(2026, 10, 21, 12)) {
    this.#now = start;
  }
  now = () => this.#now;
  setTimeout = (fn: () => void, ms: number) => {
    const id = this.#next++;
    this.#timers.set(id, { at: this.#now + ms, fn });
    return id;
  };
  clearTimeout = (handle: unknown) => {
    this.#timers.delete(handle as number);
  };
  /** The delays of the timers now pending, soonest first. */
  pending(): number[] {
    return [...this.#timers.values()].map((t) => t.at - this.#now).sort((a, b) => a - b);
  }
  /** Moves time forward, firing every timer due on the way (and settling the promises they start). */
  async advance(ms: number): Promise<void> {
    const end = this.#now + ms;
    for (let fired = 0; ; fired++) {
      if (fired > 10_000) throw new Error("timers keep rescheduling themselves with no delay");
      const due = [...this.#timers.entries()].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.#timers.delete(due[0]);
      this.#now = Math.max(this.#now, due[1].at);
      due[1].fn();
      await settle();
    }
    this.#now = end;
    await settle();
  }
}

export const settle = async () => {
  for (let i = 0; i < 20; i++) await Promise.resolve();
};
