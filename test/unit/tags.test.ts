import { describe, expect, it } from "vitest";
import { TAG, fanoutTags, readFanoutTags, stageName } from "../../worker/ivs/tags.ts";

describe("stage tags", () => {
  it("name the broadcast, the role and the creating deployment", () => {
    expect(fanoutTags({ broadcastId: "main", role: "origin", deployment: "fanout" })).toEqual({
      [TAG.broadcast]: "main",
      [TAG.role]: "origin",
      [TAG.creator]: "fanout",
    });
  });

  it("read back as Fanout's own only for the same deployment", () => {
    const tags = fanoutTags({ broadcastId: "launch-2026", role: "edge", deployment: "fanout" });
    expect(readFanoutTags(tags, "fanout")).toEqual({ broadcastId: "launch-2026", role: "edge" });
    expect(readFanoutTags(tags, "fanout-staging")).toBeUndefined();
    expect(readFanoutTags({ team: "video" }, "fanout")).toBeUndefined();
    expect(readFanoutTags(undefined, "fanout")).toBeUndefined();
  });

  it("give stage names IVS accepts", () => {
    const name = stageName("a".repeat(64), "origin");
    expect(name).toMatch(/^[a-zA-Z0-9-_]{1,128}$/);
  });
});
