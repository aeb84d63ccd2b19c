import { describe, expect, it } from "vitest";
import { stageIdOf } from "../../protocol/ids.ts";
import { newParticipantId, selfSignedClaims } from "../../worker/tokens/claims.ts";
import { toPem } from "../../worker/tokens/participant-token.ts";

describe("self-signed token claims", () => {
  const input = {
    stageArn: "arn:aws:ivs:us-east-1:123456789012:stage/AbCdEf123456",
    endpoints: { events: "wss://global.events.live-video.net", whip: "https://abc.global-bm.whip.live-video.net" },
    participantId: "p-1",
    capabilities: ["SUBSCRIBE"] as const,
    durationMinutes: 60,
    now: 1_700_000_000,
  };

  it("are exactly those of the token design (docs/design.md), without optional ones when absent", () => {
    expect(selfSignedClaims(input)).toEqual({
      exp: 1_700_003_600,
      iat: 1_700_000_000,
      jti: "p-1",
      resource: input.stageArn,
      topic: "AbCdEf123456",
      events_url: input.endpoints.events,
      whip_url: input.endpoints.whip,
      capabilities: { allow_publish: false, allow_subscribe: true },
      version: "1.0",
    });
  });

  it("carry user_id and attributes when given", () => {
    const claims = selfSignedClaims({ ...input, userId: "u", attributes: { a: "b" } });
    expect(claims.user_id).toBe("u");
    expect(claims.attributes).toEqual({ a: "b" });
  });

  it("take the topic from the stage ARN", () => {
    expect(stageIdOf("arn:aws:ivs:eu-west-1:1:stage/xyz")).toBe("xyz");
  });

  it("use participant ids IVS accepts: letters, digits and dashes, no underscore", () => {
    for (let i = 0; i < 200; i++) expect(newParticipantId()).toMatch(/^[a-zA-Z0-9-]{12}$/);
    expect(new Set(Array.from({ length: 200 }, newParticipantId)).size).toBe(200);
  });
});

describe("private key formats", () => {
  it("accept a one-line base64 body, a PEM, and a PEM with escaped newlines alike", () => {
    const body = "A".repeat(100);
    const pem = toPem(body);
    expect(pem).toBe(`-----BEGIN PRIVATE KEY-----\n${"A".repeat(64)}\n${"A".repeat(36)}\n-----END PRIVATE KEY-----\n`);
    expect(toPem(pem)).toBe(pem);
    expect(toPem(pem.replace(/\n/g, "\\n"))).toBe(pem);
  });
});
