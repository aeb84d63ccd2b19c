import { AwsClient } from "aws4fetch";
import { backoffDelay } from "../../protocol/backoff.ts";
import { IvsError, errorTypeFromHeader } from "./error.ts";
import type {
  Capability,
  Page,
  ParticipantReplica,
  ParticipantEvent,
  ParticipantSummary,
  ParticipantToken,
  PublicKey,
  PublicKeySummary,
  Stage,
  StageSessionSummary,
  StageSummary,
  Tags,
} from "./types.ts";

/**
 * The IVS Real-Time API over fetch: every operation is `POST /<Operation>`
 * with a JSON body, signed with SigV4. The same code talks to AWS in
 * production and to the emulator locally; only `endpoint` differs.
 */

/** IVS Real-Time signs as `ivs`; aws4fetch would guess `ivsrealtime` from the host. */
export const SIGNING_NAME = "ivs";

export interface IvsClientOptions {
  region: string;
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  /** Per attempt. */
  timeoutMs?: number;
  /** Retries after the first attempt, for retryable failures only. */
  maxRetries?: number;
  retryBaseMs?: number;
  /**
   * Throttling (429) is retried no sooner than half of this, doubling: IVS counts its
   * 5 TPS quotas per second, so a retry 100 ms later only meets the same full second.
   */
  throttleRetryBaseMs?: number;
  /**
   * Called before every attempt of an operation IVS limits to 5 TPS per account
   * (PACED_OPERATIONS): the account's budget (worker/account/pacer.ts) makes it wait its turn.
   */
  pace?: (operation: string) => Promise<void>;
}

/**
 * The operations Fanout calls that IVS limits to 5 requests a second per account
 * (RealTimeUserGuide, "Service Quotas"; not adjustable), shared by every object of a deployment.
 */
export const PACED_OPERATIONS: ReadonlySet<string> = new Set([
  "CreateStage",
  "DeleteStage",
  "GetStage",
  "ListStages",
  "ListParticipants",
  "ListParticipantEvents",
  "ListStageSessions",
  "DisconnectParticipant",
]);

export class IvsClient {
  readonly #aws: AwsClient;
  readonly #endpoint: string;
  readonly #timeoutMs: number;
  readonly #maxRetries: number;
  readonly #retryBaseMs: number;
  readonly #throttleRetryBaseMs: number;
  readonly #pace: ((operation: string) => Promise<void>) | undefined;

  constructor(options: IvsClientOptions) {
    this.#aws = new AwsClient({
      accessKeyId: options.accessKeyId,
      secretAccessKey: options.secretAccessKey,
      sessionToken: options.sessionToken,
      service: SIGNING_NAME,
      region: options.region,
      // Retries are ours: aws4fetch neither times out nor retries network errors.
      retries: 0,
    });
    this.#endpoint = options.endpoint.replace(/\/+$/, "");
    this.#timeoutMs = options.timeoutMs ?? 5_000;
    this.#maxRetries = options.maxRetries ?? 3;
    this.#retryBaseMs = options.retryBaseMs ?? 100;
    this.#throttleRetryBaseMs = options.throttleRetryBaseMs ?? 1_000;
    this.#pace = options.pace;
  }

  // ── stages ───────────────────────────────────────────────────────────────

  /**
   * Not idempotent: IVS takes no client token, so a call that timed out or failed at the server
   * may still have created the stage. Only throttling (the call was not run) is retried here; the
   * caller tags the stage with a request id and looks for it before it creates again (pool.ts).
   */
  createStage(input: { name?: string; tags?: Tags } = {}): Promise<{ stage: Stage }> {
    return this.#call("CreateStage", input, { idempotent: false });
  }

  getStage(arn: string): Promise<{ stage: Stage }> {
    return this.#call("GetStage", { arn });
  }

  async deleteStage(arn: string): Promise<void> {
    await this.#call("DeleteStage", { arn });
  }

  listStages(page: Page = {}): Promise<{ stages: StageSummary[]; nextToken?: string }> {
    return this.#call("ListStages", page);
  }

  /** Every stage of the account, following `nextToken` to the last page. */
  async listAllStages(): Promise<StageSummary[]> {
    return this.#collect(
      (nextToken) => this.listStages({ nextToken, maxResults: 100 }),
      (p) => p.stages,
    );
  }

  /** The account's stages carrying tag `key` with `value` (ListStages returns tags; there is no filter). */
  async stagesTagged(key: string, value: string): Promise<StageSummary[]> {
    return (await this.listAllStages()).filter((s) => s.tags?.[key] === value);
  }

  // ── participants ─────────────────────────────────────────────────────────

  createParticipantToken(input: {
    stageArn: string;
    duration?: number;
    userId?: string;
    attributes?: Record<string, string>;
    capabilities?: Capability[];
  }): Promise<{ participantToken: ParticipantToken }> {
    return this.#call("CreateParticipantToken", input);
  }

  listParticipants(
    input: {
      stageArn: string;
      sessionId: string;
      filterByPublished?: boolean;
      filterByState?: "CONNECTED" | "DISCONNECTED";
    } & Page,
  ): Promise<{ participants: ParticipantSummary[]; nextToken?: string }> {
    return this.#call("ListParticipants", input);
  }

  /** Every participant of a session that matches, following `nextToken` to the last page. */
  listAllParticipants(
    input: Omit<Parameters<IvsClient["listParticipants"]>[0], "nextToken" | "maxResults">,
  ): Promise<ParticipantSummary[]> {
    return this.#collect(
      (nextToken) => this.listParticipants({ ...input, nextToken, maxResults: 100 }),
      (p) => p.participants,
    );
  }

  /** A participant's events in a session (JOINED, PUBLISH_STARTED, PUBLISH_STOPPED, LEFT, ...), every page. */
  listAllParticipantEvents(input: {
    stageArn: string;
    sessionId: string;
    participantId: string;
  }): Promise<ParticipantEvent[]> {
    return this.#collect(
      (nextToken) =>
        this.#call<{ events: ParticipantEvent[]; nextToken?: string }>("ListParticipantEvents", {
          ...input,
          nextToken,
          maxResults: 100,
        }),
      (p) => p.events,
    );
  }

  async disconnectParticipant(input: { stageArn: string; participantId: string; reason?: string }): Promise<void> {
    await this.#call("DisconnectParticipant", input);
  }

  listStageSessions(
    input: { stageArn: string } & Page,
  ): Promise<{ stageSessions: StageSessionSummary[]; nextToken?: string }> {
    return this.#call("ListStageSessions", input);
  }

  // ── replication ──────────────────────────────────────────────────────────

  async startParticipantReplication(input: {
    sourceStageArn: string;
    destinationStageArn: string;
    participantId: string;
    reconnectWindowSeconds?: number;
    attributes?: Record<string, string>;
  }): Promise<void> {
    await this.#call("StartParticipantReplication", input);
  }

  async stopParticipantReplication(input: {
    sourceStageArn: string;
    destinationStageArn: string;
    participantId: string;
  }): Promise<void> {
    await this.#call("StopParticipantReplication", input);
  }

  listParticipantReplicas(
    input: { sourceStageArn: string; participantId: string } & Page,
  ): Promise<{ replicas: ParticipantReplica[]; nextToken?: string }> {
    return this.#call("ListParticipantReplicas", input);
  }

  /** Every replica of a participant, following `nextToken` to the last page. */
  listAllParticipantReplicas(input: { sourceStageArn: string; participantId: string }): Promise<ParticipantReplica[]> {
    return this.#collect(
      (nextToken) => this.listParticipantReplicas({ ...input, nextToken, maxResults: 50 }),
      (p) => p.replicas,
    );
  }

  // ── public keys ──────────────────────────────────────────────────────────

  importPublicKey(input: { publicKeyMaterial: string; name?: string; tags?: Tags }): Promise<{ publicKey: PublicKey }> {
    return this.#call("ImportPublicKey", input);
  }

  getPublicKey(arn: string): Promise<{ publicKey: PublicKey }> {
    return this.#call("GetPublicKey", { arn });
  }

  listPublicKeys(page: Page = {}): Promise<{ publicKeys: PublicKeySummary[]; nextToken?: string }> {
    return this.#call("ListPublicKeys", page);
  }

  async deletePublicKey(arn: string): Promise<void> {
    await this.#call("DeletePublicKey", { arn });
  }

  // ── the wire ─────────────────────────────────────────────────────────────

  async #collect<P extends { nextToken?: string }, T>(
    fetchPage: (nextToken?: string) => Promise<P>,
    items: (page: P) => T[],
  ): Promise<T[]> {
    const all: T[] = [];
    let nextToken: string | undefined;
    do {
      const page = await fetchPage(nextToken);
      all.push(...items(page));
      nextToken = page.nextToken;
    } while (nextToken);
    return all;
  }

  async #call<T>(operation: string, input: object, options: { idempotent?: boolean } = {}): Promise<T> {
    const idempotent = options.idempotent ?? true;
    for (let attempt = 0; ; attempt++) {
      try {
        // A turn refused by the budget is an IvsError of kind "throttled": backed off like a 429.
        if (this.#pace && PACED_OPERATIONS.has(operation)) await this.#pace(operation);
        return await this.#attempt<T>(operation, input);
      } catch (error) {
        if (!(error instanceof IvsError) || !error.retryable || attempt >= this.#maxRetries) throw error;
        const throttled = error.kind === "throttled";
        // A call that may have been carried out is not repeated blindly.
        if (!idempotent && !throttled) throw error;
        const wait = throttled
          ? backoffDelay(attempt, { baseMs: this.#throttleRetryBaseMs, capMs: 8_000, jitter: "equal" })
          : backoffDelay(attempt, { baseMs: this.#retryBaseMs });
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
  }

  async #attempt<T>(operation: string, input: object): Promise<T> {
    const body = JSON.stringify(input);
    // Signed per attempt: a retry gets a fresh date and signature.
    const signed = await this.#aws.sign(`${this.#endpoint}/${operation}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    // One deadline for the whole exchange, the body included, and a timer cleared as soon as it
    // is over (AbortSignal.timeout() keeps the request context alive for its full length).
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.#timeoutMs);
    let response: Response;
    let text: string;
    try {
      // The body goes as the string it was signed from, not as the signed Request's stream.
      response = await fetch(signed.url, { method: "POST", headers: signed.headers, body, signal: controller.signal });
      text = await response.text();
    } catch (error) {
      throw controller.signal.aborted
        ? new IvsError(operation, "TimeoutError", 0, `no answer within ${this.#timeoutMs} ms`, { cause: error })
        : new IvsError(operation, "NetworkError", 0, (error as Error).message, { cause: error });
    } finally {
      clearTimeout(timer);
    }
    if (response.ok) return (text ? JSON.parse(text) : {}) as T;
    let failure: { exceptionMessage?: string; message?: string; Message?: string; __type?: string } = {};
    try {
      failure = JSON.parse(text) as typeof failure;
    } catch {
      // Not every failure has a JSON body (a proxy's 502, a throttling page): keep the status.
    }
    const type =
      errorTypeFromHeader(response.headers.get("x-amzn-ErrorType")) ?? failure.__type ?? `Http${response.status}`;
    throw new IvsError(
      operation,
      type,
      response.status,
      failure.exceptionMessage ?? failure.message ?? failure.Message ?? "",
    );
  }
}
