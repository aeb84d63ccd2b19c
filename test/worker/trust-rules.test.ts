import { describe, expect, it } from "vitest";
import { embedCode, shareLink, viewerKeyOf } from "../../app/src/lib/share.ts";
import { isUserId, PARTICIPANT_ID_PATTERN } from "../../protocol/ids.ts";
import { broadcastExists, cachedAnswers } from "../../worker/http/existence.ts";
import { clientKey } from "../../worker/http/rate-limit.ts";
import { cachedRoutingTable, cachedTables } from "../../worker/join/cached-table.ts";

describe("rate-limit buckets", () => {
  it("an IPv4 client is its address", () => {
    expect(clientKey("203.0.113.7")).toBe("203.0.113.7");
    expect(clientKey("::ffff:203.0.113.7")).toBe("203.0.113.7");
    expect(clientKey(undefined)).toBe("unknown");
  });

  it("an IPv6 client is its /64, however it writes its address", () => {
    const bucket = "2001:db8:aaaa:bbbb::/64";
    for (const ip of [
      "2001:db8:aaaa:bbbb::1",
      "2001:DB8:AAAA:BBBB:1234:5678:9abc:def0",
      "2001:0db8:aaaa:bbbb:0:0:0:7",
      "2001:db8:aaaa:bbbb:ffff::",
    ])
      expect(clientKey(ip), ip).toBe(bucket);
    expect(clientKey("2001:db8:aaaa:cccc::1")).not.toBe(bucket);
    expect(clientKey("2001:db8::1")).toBe("2001:db8:0:0::/64");
    expect(clientKey("::1")).toBe("0:0:0:0::/64");
  });
});

describe("identifiers as IVS takes them", () => {
  it("user ids: any text up to 128 characters, no control characters", () => {
    for (const ok of ["viewer-42", "Zoë Ørsted", "山田 太郎", "👩‍👩‍👧 family", "x".repeat(128), "🦊".repeat(128)])
      expect(isUserId(ok), ok).toBe(true);
    for (const bad of ["", "x".repeat(129), "tab\there", "new\nline", "\u0000", "\u007f", "\u009b", "\ud800"])
      expect(isUserId(bad), JSON.stringify(bad)).toBe(false);
  });

  it("participant ids: the AWS model's pattern, so no underscore", () => {
    expect(PARTICIPANT_ID_PATTERN.test("hV3xkQ9aLm2P")).toBe(true);
    expect(PARTICIPANT_ID_PATTERN.test("a-b")).toBe(true);
    for (const bad of ["a_b", "", "x".repeat(65), "a b", "a.b"]) expect(PARTICIPANT_ID_PATTERN.test(bad)).toBe(false);
  });
});

describe("share links with VIEWER_ACCESS=key", () => {
  it("carry the viewer key in the fragment, which the player reads back", () => {
    const link = shareLink("https://live.example", "town-hall", "v-key/+=&");
    expect(link).toBe("https://live.example/watch/town-hall#key=v-key%2F%2B%3D%26");
    expect(viewerKeyOf(new URL(link).hash)).toBe("v-key/+=&");
    // The fragment never reaches a server: nothing of the key is in the request URL.
    expect(new URL(link).pathname + new URL(link).search).not.toContain("v-key");
  });

  it("carry nothing on an open deployment", () => {
    expect(shareLink("https://live.example", "main")).toBe("https://live.example/watch/main");
    expect(viewerKeyOf("")).toBeUndefined();
    expect(embedCode("https://live.example", "main", 'k&"')).toContain(
      'src="https://live.example/embed/main#key=k%26%22"',
    );
  });
});

describe("per-isolate maps are bounded", () => {
  it("the routing-table cache keeps at most 1,000 broadcasts", async () => {
    const env = {
      BROADCAST: { getByName: () => ({ routingTable: async () => ({ status: "live", stages: [] }) }) },
    } as unknown as Env;
    for (let i = 0; i < 1_500; i++) await cachedRoutingTable(env, `b-${i}`);
    expect(cachedTables()).toBe(1_000);
  });

  it("the existence cache keeps at most 10,000 answers", async () => {
    const env = { DIRECTORY: { getByName: () => ({ exists: async () => false }) } } as unknown as Env;
    for (let i = 0; i < 12_000; i++) await broadcastExists(env, `made-up-${i}`);
    expect(cachedAnswers()).toBe(10_000);
  });
});
