import {
  SignJWT,
  decodeJwt,
  decodeProtectedHeader,
  exportPKCS8,
  generateKeyPair,
  importPKCS8,
  importSPKI,
  jwtVerify,
} from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { createTokenKey, type TokenKey } from "../../scripts/token-key.ts";
import { issueParticipantToken, toPem, type TokenIssuer } from "../../worker/tokens/participant-token.ts";
import type { Stage } from "../../worker/ivs/types.ts";
import { control, ivsClient, join, useEmulator } from "../support/emulator.ts";

/** Tokens minted by the Worker's own code, presented to the emulator's events hub as a client would. */
describe("participant tokens", () => {
  const ctx = useEmulator();
  let key: TokenKey;
  let stage: Required<Pick<Stage, "arn">> & { endpoints: { events: string; whip: string } };
  let selfSigned: TokenIssuer;

  beforeAll(async () => {
    const ivs = ivsClient(ctx.url);
    key = await createTokenKey(ivs, "tokens-test");
    const created = (await ivs.createStage({ name: "tokens" })).stage;
    stage = { arn: created.arn, endpoints: { events: created.endpoints!.events!, whip: created.endpoints!.whip! } };
    selfSigned = { kind: "self-signed", privateKey: key.privateKey, keyArn: key.keyArn };
  });

  const viewerRequest = () => ({
    stage,
    capabilities: ["SUBSCRIBE"] as const,
    durationMinutes: 60,
    userId: "viewer-1",
  });

  it("a self-signed token carries exactly the claims of the token design (docs/design.md)", async () => {
    const before = Math.floor(Date.now() / 1000);
    const issued = await issueParticipantToken(selfSigned, { ...viewerRequest(), attributes: { seat: "A1" } });
    expect(decodeProtectedHeader(issued.token)).toEqual({ alg: "ES384", typ: "JWT", kid: key.keyArn });
    const claims = decodeJwt(issued.token);
    expect(Object.keys(claims).sort()).toEqual(
      [
        "attributes",
        "capabilities",
        "events_url",
        "exp",
        "iat",
        "jti",
        "resource",
        "topic",
        "user_id",
        "version",
        "whip_url",
      ].sort(),
    );
    expect(claims).toMatchObject({
      jti: issued.participantId,
      resource: stage.arn,
      topic: stage.arn.split("/").pop(),
      events_url: stage.endpoints.events,
      whip_url: stage.endpoints.whip,
      capabilities: { allow_publish: false, allow_subscribe: true },
      version: "1.0",
      user_id: "viewer-1",
      attributes: { seat: "A1" },
    });
    expect(issued.participantId).toMatch(/^[a-zA-Z0-9-]+$/);
    expect(claims.iat).toBeGreaterThanOrEqual(before);
    expect(claims.exp! - claims.iat!).toBe(60 * 60);
    expect(issued.expiresAt).toBe(new Date(claims.exp! * 1000).toISOString());
  });

  it("a publisher token allows publishing and subscribing", async () => {
    const issued = await issueParticipantToken(selfSigned, {
      stage,
      capabilities: ["PUBLISH", "SUBSCRIBE"],
      durationMinutes: 240,
    });
    expect(decodeJwt(issued.token).capabilities).toEqual({ allow_publish: true, allow_subscribe: true });
    expect(decodeJwt(issued.token).user_id).toBeUndefined();
  });

  it("verifies against the public key imported into IVS", async () => {
    const issued = await issueParticipantToken(selfSigned, viewerRequest());
    const { publicKey } = await ivsClient(ctx.url).getPublicKey(key.keyArn);
    const verified = await jwtVerify(issued.token, await importSPKI(publicKey.publicKeyMaterial!, "ES384"));
    expect(verified.payload.resource).toBe(stage.arn);
  });

  it("is accepted by the emulator", async () => {
    const issued = await issueParticipantToken(selfSigned, viewerRequest());
    const participant = join(stage.endpoints.events, issued.token);
    expect(await participant.joined).toMatchObject({ type: "joined", participantId: issued.participantId });
    participant.ws.close();
  });

  it("renewed for the same participant, is exchanged in place without leaving the stage", async () => {
    const first = await issueParticipantToken(selfSigned, viewerRequest());
    const participant = join(stage.endpoints.events, first.token);
    await participant.joined;
    const renewed = await issueParticipantToken(selfSigned, {
      ...viewerRequest(),
      durationMinutes: 120,
      participantId: first.participantId,
    });
    expect(renewed.participantId).toBe(first.participantId);
    expect(await participant.exchange(renewed.token)).toEqual({ type: "exchanged", expiresAt: renewed.expiresAt });
    expect(participant.ws.readyState).toBe(WebSocket.OPEN);
    participant.ws.close();
  });

  it("a token for another participant is refused in an exchange, and the connection ends", async () => {
    const participant = join(stage.endpoints.events, (await issueParticipantToken(selfSigned, viewerRequest())).token);
    await participant.joined;
    const someoneElse = await issueParticipantToken(selfSigned, viewerRequest());
    expect(await participant.exchange(someoneElse.token)).toMatchObject({ type: "error", code: "wrong_participant" });
    expect((await participant.closed).code).toBe(4401);
  });

  it("is rejected by the emulator once expired", async () => {
    const privateKey = await importPKCS8(toPem(key.privateKey), "ES384");
    const expired = await new SignJWT({
      ...decodeJwt((await issueParticipantToken(selfSigned, viewerRequest())).token),
      exp: Math.floor(Date.now() / 1000) - 10,
    })
      .setProtectedHeader({ alg: "ES384", typ: "JWT", kid: key.keyArn })
      .sign(privateKey);
    const participant = join(stage.endpoints.events, expired);
    expect(await participant.joined).toMatchObject({ type: "error", code: "expired" });
    expect((await participant.closed).code).toBe(4401);
  });

  it("is rejected by the emulator when signed by another key", async () => {
    const other = await generateKeyPair("ES384", { extractable: true });
    const forged: TokenIssuer = {
      kind: "self-signed",
      privateKey: await exportPKCS8(other.privateKey),
      keyArn: key.keyArn,
    };
    const participant = join(stage.endpoints.events, (await issueParticipantToken(forged, viewerRequest())).token);
    expect(await participant.joined).toMatchObject({ type: "error", code: "bad_signature" });
  });

  it("is rejected by the emulator when its key was never imported", async () => {
    const stranger: TokenIssuer = {
      kind: "self-signed",
      privateKey: key.privateKey,
      keyArn: "arn:aws:ivs:us-east-1:123456789012:public-key/neverImported",
    };
    const participant = join(stage.endpoints.events, (await issueParticipantToken(stranger, viewerRequest())).token);
    expect(await participant.joined).toMatchObject({ type: "error", code: "unknown_key" });
  });

  it("is rejected by the emulator for a stage that does not exist", async () => {
    const gone = { ...stage, arn: "arn:aws:ivs:us-east-1:123456789012:stage/deletedStage1" };
    const participant = join(
      stage.endpoints.events,
      (await issueParticipantToken(selfSigned, { ...viewerRequest(), stage: gone })).token,
    );
    expect(await participant.joined).toMatchObject({ type: "error", code: "wrong_stage" });
  });

  it("one token, one connection: a second connection with the same token takes over, the first is closed", async () => {
    const issued = await issueParticipantToken(selfSigned, viewerRequest());
    const first = join(stage.endpoints.events, issued.token);
    expect((await first.joined).type).toBe("joined");
    const second = join(stage.endpoints.events, issued.token);
    expect(await second.joined).toMatchObject({ type: "joined", participantId: issued.participantId });
    expect((await first.closed).code).toBe(4000);
    second.ws.close();
  });

  it("a participant disconnected by DisconnectParticipant is closed and cannot come back", async () => {
    const issued = await issueParticipantToken(selfSigned, viewerRequest());
    const participant = join(stage.endpoints.events, issued.token);
    await participant.joined;
    await ivsClient(ctx.url).disconnectParticipant({
      stageArn: stage.arn,
      participantId: issued.participantId,
      reason: "test",
    });
    expect((await participant.closed).reason).toBe("test");
    const again = join(stage.endpoints.events, issued.token);
    expect(await again.joined).toMatchObject({ type: "error", code: "revoked" });
  });

  it("without a key, tokens come from CreateParticipantToken and the emulator accepts them", async () => {
    const api: TokenIssuer = { kind: "api", ivs: ivsClient(ctx.url) };
    const issued = await issueParticipantToken(api, {
      stage,
      capabilities: ["PUBLISH", "SUBSCRIBE"],
      durationMinutes: 30,
      userId: "host",
    });
    expect(issued).toMatchObject({ stageArn: stage.arn, capabilities: ["PUBLISH", "SUBSCRIBE"] });
    expect(Date.parse(issued.expiresAt) - Date.now()).toBeGreaterThan(29 * 60_000);
    const participant = join(stage.endpoints.events, issued.token);
    expect(await participant.joined).toMatchObject({ type: "joined", participantId: issued.participantId });
    participant.ws.close();
  });

  it("a subscriber-only token cannot publish", async () => {
    const participant = join(stage.endpoints.events, (await issueParticipantToken(selfSigned, viewerRequest())).token);
    await participant.joined;
    expect(await participant.publish()).toMatchObject({ type: "error", code: "AccessDeniedException" });
    participant.ws.close();
  });
});

describe("stage quotas", () => {
  const ctx = useEmulator({ quotas: { subscribersPerStage: 2, publishersPerStage: 1 } });

  it("admits subscribers up to the quota and refuses the next", async () => {
    const ivs = ivsClient(ctx.url);
    const created = (await ivs.createStage({})).stage;
    const token = async () =>
      (await ivs.createParticipantToken({ stageArn: created.arn, capabilities: ["SUBSCRIBE"] })).participantToken
        .token!;
    const a = join(created.endpoints!.events!, await token());
    const b = join(created.endpoints!.events!, await token());
    expect((await a.joined).type).toBe("joined");
    expect((await b.joined).type).toBe("joined");
    const c = join(created.endpoints!.events!, await token());
    expect(await c.joined).toMatchObject({ type: "error", code: "ServiceQuotaExceededException" });
    a.ws.close();
    b.ws.close();
  });

  it("admits publishers up to the quota and refuses the next", async () => {
    const ivs = ivsClient(ctx.url);
    await control(ctx.url, "quotas", "PUT", { subscribersPerStage: 10 });
    const created = (await ivs.createStage({})).stage;
    const token = async () => (await ivs.createParticipantToken({ stageArn: created.arn })).participantToken.token!;
    const a = join(created.endpoints!.events!, await token());
    const b = join(created.endpoints!.events!, await token());
    await Promise.all([a.joined, b.joined]);
    expect((await a.publish()).type).toBe("published");
    expect(await b.publish()).toMatchObject({ type: "error", code: "ServiceQuotaExceededException" });
    a.ws.close();
    b.ws.close();
  });
});
