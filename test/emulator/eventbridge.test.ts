import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import { control, ivsClient, useEmulator } from "../support/emulator.ts";

/**
 * The emulator delivers IVS's "IVS Stage Update" events as an EventBridge API destination would:
 * to a configured URL, with the connection's API key, shaped as AWS documents them.
 */

type Delivered = { headers: Record<string, string | string[] | undefined>; body: Record<string, unknown> };

async function receiver() {
  const delivered: Delivered[] = [];
  const server = createServer((req, res) => {
    let text = "";
    req.on("data", (chunk) => (text += chunk));
    req.on("end", () => {
      delivered.push({ headers: req.headers, body: JSON.parse(text) });
      res.end("{}");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/ivs/events`;
  const until = async (n: number) => {
    for (let i = 0; i < 200 && delivered.length < n; i++) await new Promise((r) => setTimeout(r, 10));
    expect(delivered.length).toBeGreaterThanOrEqual(n);
  };
  return { delivered, url, until, close: () => server.close() };
}

describe("EventBridge delivery from the emulator", () => {
  const ctx = useEmulator();

  it("a participant publishing and leaving is delivered as Participant Published and Participant Unpublished", async () => {
    const target = await receiver();
    await control(ctx.url, "eventbridge", "PUT", { url: target.url, apiKey: "k".repeat(20) });
    const ivs = ivsClient(ctx.url);
    const { stage } = await ivs.createStage({});
    const { participantToken } = await ivs.createParticipantToken({
      stageArn: stage.arn,
      userId: "host",
      capabilities: ["PUBLISH"],
    });
    const ws = new WebSocket(stage.endpoints!.events!);
    await new Promise((resolve) => ws.addEventListener("open", resolve));
    ws.send(JSON.stringify({ type: "join", token: participantToken.token }));
    await new Promise((resolve) => setTimeout(resolve, 50));
    ws.send(JSON.stringify({ type: "publish" }));
    await target.until(1);
    ws.close();
    await target.until(2);

    const [published, unpublished] = target.delivered;
    expect(published!.headers["x-api-key"]).toBe("k".repeat(20));
    expect(published!.body).toMatchObject({
      "detail-type": "IVS Stage Update",
      source: "aws.ivs",
      resources: [stage.arn],
      detail: { event_name: "Participant Published", participant_id: participantToken.participantId, user_id: "host" },
    });
    // EventBridge's time: whole seconds.
    expect(published!.body.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(unpublished!.body).toMatchObject({ detail: { event_name: "Participant Unpublished" } });
    expect(unpublished!.body.id).not.toBe(published!.body.id);
    target.close();
  });

  it("a malformed target is refused", async () => {
    await expect(control(ctx.url, "eventbridge", "PUT", { url: "not a url", apiKey: "x" })).rejects.toThrow(/400/);
  });
});
