import {
  CreateParticipantTokenCommand,
  CreateStageCommand,
  DeleteStageCommand,
  GetStageCommand,
  ListParticipantReplicasCommand,
  ListParticipantsCommand,
  ListStagesCommand,
  ResourceNotFoundException,
  ServiceQuotaExceededException,
  StartParticipantReplicationCommand,
  ValidationException,
  ConflictException,
  paginateListStages,
} from "@aws-sdk/client-ivs-realtime";
import { describe, expect, it } from "vitest";
import { join, sdkClient, useEmulator } from "../support/emulator.ts";

const STAGE_ARN = /^arn:aws:ivs:us-east-1:123456789012:stage\/[a-zA-Z0-9]{12}$/;

describe("the emulator, driven by the official AWS SDK", () => {
  const ctx = useEmulator({ quotas: { stagesPerAccount: 8 } });

  it("creates a stage with endpoints and tags, and gets it back", async () => {
    const sdk = sdkClient(ctx.url);
    const created = await sdk.send(new CreateStageCommand({ name: "sdk-stage", tags: { "fanout:role": "origin" } }));
    expect(created.stage?.arn).toMatch(STAGE_ARN);
    expect(created.stage?.endpoints?.events).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/events$/);
    expect(created.stage?.endpoints?.whip).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/whip$/);
    const got = await sdk.send(new GetStageCommand({ arn: created.stage!.arn }));
    expect(got.stage).toMatchObject({ arn: created.stage!.arn, name: "sdk-stage", tags: { "fanout:role": "origin" } });
    await sdk.send(new DeleteStageCommand({ arn: created.stage!.arn }));
  });

  it("lists stages across pages with nextToken", async () => {
    const sdk = sdkClient(ctx.url);
    const arns: string[] = [];
    for (let i = 0; i < 5; i++) arns.push((await sdk.send(new CreateStageCommand({ name: `page-${i}` }))).stage!.arn!);
    const first = await sdk.send(new ListStagesCommand({ maxResults: 2 }));
    expect(first.stages).toHaveLength(2);
    expect(first.nextToken).toBeTruthy();
    const seen: string[] = [];
    for await (const page of paginateListStages({ client: sdk, pageSize: 2 }, {})) {
      expect(page.stages!.length).toBeLessThanOrEqual(2);
      seen.push(...page.stages!.map((s) => s.arn!));
    }
    expect(seen).toEqual(expect.arrayContaining(arns));
    expect(new Set(seen).size).toBe(seen.length);
    for (const arn of arns) await sdk.send(new DeleteStageCommand({ arn }));
  });

  it("issues a participant token with the requested capabilities and expiry", async () => {
    const sdk = sdkClient(ctx.url);
    const { stage } = await sdk.send(new CreateStageCommand({}));
    const before = Date.now();
    const { participantToken } = await sdk.send(
      new CreateParticipantTokenCommand({
        stageArn: stage!.arn,
        userId: "alice",
        duration: 60,
        capabilities: ["SUBSCRIBE"],
      }),
    );
    expect(participantToken?.participantId).toMatch(/^[a-zA-Z0-9]{12}$/);
    expect(participantToken?.capabilities).toEqual(["SUBSCRIBE"]);
    expect(participantToken?.userId).toBe("alice");
    expect(participantToken?.expirationTime).toBeInstanceOf(Date);
    const expiresIn = participantToken!.expirationTime!.getTime() - before;
    expect(expiresIn).toBeGreaterThan(59 * 60_000);
    expect(expiresIn).toBeLessThanOrEqual(60 * 60_000 + 1000);
    await sdk.send(new DeleteStageCommand({ arn: stage!.arn }));
  });

  it("replicates a publishing participant into another stage", async () => {
    const sdk = sdkClient(ctx.url);
    const origin = (await sdk.send(new CreateStageCommand({ name: "origin" }))).stage!;
    const edge = (await sdk.send(new CreateStageCommand({ name: "edge" }))).stage!;
    const { participantToken } = await sdk.send(new CreateParticipantTokenCommand({ stageArn: origin.arn }));
    const replicate = new StartParticipantReplicationCommand({
      sourceStageArn: origin.arn,
      destinationStageArn: edge.arn,
      participantId: participantToken!.participantId!,
      reconnectWindowSeconds: 30,
    });

    // Not connected yet: there is nobody to replicate.
    await expect(sdk.send(replicate)).rejects.toBeInstanceOf(ResourceNotFoundException);
    const publisher = join(origin.endpoints!.events!, participantToken!.token!);
    expect((await publisher.joined).type).toBe("joined");
    // Connected but not publishing: a conflict, worth retrying later.
    await expect(sdk.send(replicate)).rejects.toBeInstanceOf(ConflictException);
    expect((await publisher.publish()).type).toBe("published");

    await sdk.send(replicate);
    const { replicas } = await sdk.send(
      new ListParticipantReplicasCommand({
        sourceStageArn: origin.arn,
        participantId: participantToken!.participantId!,
      }),
    );
    expect(replicas).toEqual([expect.objectContaining({ destinationStageArn: edge.arn, replicationState: "ACTIVE" })]);
    const edgeSession = (await sdk.send(new GetStageCommand({ arn: edge.arn }))).stage!.activeSessionId!;
    const { participants } = await sdk.send(
      new ListParticipantsCommand({ stageArn: edge.arn, sessionId: edgeSession }),
    );
    expect(participants).toEqual([
      expect.objectContaining({
        participantId: participantToken!.participantId,
        replicationType: "REPLICA",
        published: true,
      }),
    ]);

    publisher.ws.close();
    await publisher.closed;
    await sdk.send(new DeleteStageCommand({ arn: edge.arn }));
    await sdk.send(new DeleteStageCommand({ arn: origin.arn }));
  });

  it("answers bad input with a ValidationException the SDK recognises", async () => {
    const error = await sdkClient(ctx.url)
      .send(new GetStageCommand({ arn: "arn:aws:ivs:us-east-1:123456789012:channel/not_a_stage" }))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ValidationException);
    expect((error as ValidationException).$metadata.httpStatusCode).toBe(400);
    expect((error as ValidationException).exceptionMessage).toMatch(/arn/);
  });

  it("answers an unknown stage with a ResourceNotFoundException", async () => {
    const error = await sdkClient(ctx.url)
      .send(new GetStageCommand({ arn: "arn:aws:ivs:us-east-1:123456789012:stage/doesNotExist" }))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ResourceNotFoundException);
    expect((error as ResourceNotFoundException).$metadata.httpStatusCode).toBe(404);
  });

  it("answers a stage over the account quota with a ServiceQuotaExceededException (402)", async () => {
    const sdk = sdkClient(ctx.url);
    const arns: string[] = [];
    let error: unknown;
    for (let i = 0; i < 9 && !error; i++) {
      try {
        arns.push((await sdk.send(new CreateStageCommand({}))).stage!.arn!);
      } catch (e) {
        error = e;
      }
    }
    expect(arns).toHaveLength(8);
    expect(error).toBeInstanceOf(ServiceQuotaExceededException);
    expect((error as ServiceQuotaExceededException).$metadata.httpStatusCode).toBe(402);
    for (const arn of arns) await sdk.send(new DeleteStageCommand({ arn }));
  });
});
