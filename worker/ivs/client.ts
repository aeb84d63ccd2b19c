import { AwsClient } from "aws4fetch";
import { backoffDelay } from "../../protocol/backoff.ts";
import { IvsError, errorTypeFromHeader } from "./error.ts";
import type {
  Capability,
  Page,
  ParticipantReplica,
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
}

export class IvsClient {
  readonly #aws: AwsClient;
  readonly #endpoint: string;
  readonly #timeoutMs: number;
  readonly #maxRetries: number;
  readonly #retryBaseMs: number;

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
  }

  // ── stages ───────────────────────────────────────────────────────────────

  createStage(input: { name?: string; tags?: Tags } = {}): Promise<{ stage: Stage }> {
    return this.#call("CreateStage", input);
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

  async #call<T>(operation: string, input: object): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#attempt<T>(operation, input);
      } catch (error) {
        if (!(error instanceof IvsError) || !error.retryable || attempt >= this.#maxRetries) throw error;
        await new Promise((resolve) => setTimeout(resolve, backoffDelay(attempt, { baseMs: this.#retryBaseMs })));
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
    let response: Response;
    try {
      // The body goes as the string it was signed from, not as the signed Request's stream.
      response = await fetch(signed.url, {
        method: "POST",
        headers: signed.headers,
        body,
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (error) {
      const timedOut = error instanceof DOMException && (error.name === "TimeoutError" || error.name === "AbortError");
      throw timedOut
        ? new IvsError(operation, "TimeoutError", 0, `no answer within ${this.#timeoutMs} ms`, { cause: error })
        : new IvsError(operation, "NetworkError", 0, (error as Error).message, { cause: error });
    }
    const text = await response.text();
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
