import { describe, expect, it } from "vitest";
import { backoffDelay, renewalDelay } from "../../app/src/lib/timing.ts";
import { loopbackFirst } from "../../app/src/lib/media/local-stage.ts";
import { transportFor } from "../../app/src/lib/media/open-stage.ts";
import { tokenInfo } from "../../app/src/lib/media/stage.ts";
import { fakeToken } from "../support/fake-stage.ts";

describe("reconnect backoff", () => {
  it("doubles from half a second, between half and all of the step, capped at 15 s", () => {
    const low = (n: number) => backoffDelay(n, undefined, () => 0);
    const high = (n: number) => backoffDelay(n, undefined, () => 1);
    expect([0, 1, 2, 3].map(low)).toEqual([250, 500, 1000, 2000]);
    expect([0, 1, 2, 3].map(high)).toEqual([500, 1000, 2000, 4000]);
    expect(high(10)).toBe(15_000);
    expect(low(50)).toBe(7_500);
  });

  it("is never zero and spreads a crowd", () => {
    const delays = Array.from({ length: 200 }, () => backoffDelay(3));
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(2000);
    expect(new Set(delays).size).toBeGreaterThan(50);
  });
});

describe("token renewal timing", () => {
  const MIN = 60_000;
  it("renews five minutes before expiry", () => {
    expect(renewalDelay(0, 240 * MIN, 0)).toBe(235 * MIN);
    expect(renewalDelay(0, 60 * MIN, 30 * MIN)).toBe(25 * MIN);
  });
  it("renews a short token at 80 % of its life", () => {
    expect(renewalDelay(0, 10 * MIN, 0)).toBe(8 * MIN);
  });
  it("renews at once when that moment has passed", () => {
    expect(renewalDelay(0, 60 * MIN, 59 * MIN)).toBe(0);
  });
});

describe("the browser transport", () => {
  const claims = { jti: "p-1", resource: "arn:aws:ivs:us-east-1:1:stage/a", iat: 1, exp: 2 };
  it("is the IVS SDK for a token whose events endpoint is AWS's, the local hub otherwise", () => {
    expect(transportFor(fakeToken(claims))).toBe("local"); // fakeToken points at an emulator hub
    const b64 = (v: object) => Buffer.from(JSON.stringify(v)).toString("base64url");
    const ivs = `${b64({ alg: "ES384" })}.${b64({ ...claims, events_url: "wss://global.events.live-video.net" })}.s`;
    expect(transportFor(ivs)).toBe("ivs");
    expect(tokenInfo(ivs)).toMatchObject({ participantId: "p-1", stageArn: claims.resource, canPublish: false });
  });

  it("offers only loopback candidates when there are any, so local media stays on 127.0.0.1", () => {
    const sdp = [
      "v=0",
      "a=candidate:1 1 udp 2122260223 192.0.2.10 50000 typ host",
      "a=candidate:2 1 udp 2122194687 127.0.0.1 50001 typ host",
      "a=candidate:3 1 udp 2122194687 ::1 50002 typ host",
      "a=end-of-candidates",
    ].join("\r\n");
    expect(loopbackFirst(sdp).split("\r\n")).toEqual([
      "v=0",
      "a=candidate:2 1 udp 2122194687 127.0.0.1 50001 typ host",
      "a=candidate:3 1 udp 2122194687 ::1 50002 typ host",
      "a=end-of-candidates",
    ]);
    const lanOnly = "v=0\r\na=candidate:1 1 udp 1 192.0.2.10 5 typ host";
    expect(loopbackFirst(lanOnly)).toBe(lanOnly);
  });
});
