import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join as joinPath } from "node:path";
import { describe, expect, it } from "vitest";
import { startEmulator } from "../../emulator/server.ts";
import { ivsClient, join } from "../support/emulator.ts";

describe("emulator state on disk", () => {
  it("keeps stages and imported keys across a restart, and nobody stays connected", async () => {
    const statePath = joinPath(mkdtempSync(joinPath(tmpdir(), "fanout-emulator-")), "state.json");
    const first = await startEmulator({ port: 0, statePath });
    const ivs = ivsClient(first.url);
    const { stage } = await ivs.createStage({ name: "kept", tags: { "fanout:broadcast": "main" } });
    const token = (await ivs.createParticipantToken({ stageArn: stage.arn })).participantToken.token!;
    const participant = join(stage.endpoints!.events!, token);
    await participant.joined;
    await first.close();

    const second = await startEmulator({ port: 0, statePath });
    try {
      const again = ivsClient(second.url);
      expect((await again.getStage(stage.arn)).stage).toMatchObject({
        name: "kept",
        tags: { "fanout:broadcast": "main" },
      });
      expect((await again.getStage(stage.arn)).stage.activeSessionId).toBeUndefined();
      // Tokens signed before the restart still verify: the emulator keeps its signing key.
      const rejoined = join(stage.endpoints!.events!.replace(/:\d+\//, `:${second.port}/`), token);
      expect((await rejoined.joined).type).toBe("joined");
      rejoined.ws.close();
    } finally {
      await second.close();
    }
  });
});
