import { expect, test, type Browser, type BrowserContext, type Page } from "@playwright/test";

/**
 * A broadcast fed by OBS: the studio hands out OBS's server and token and
 * publishes nothing itself. The emulator cannot receive WHIP, so "OBS" here
 * is a page that joins the emulator's hub with that token and publishes its
 * fake camera, the way IVS sees an OBS participant: a publish-only
 * participant that never tells Fanout anything. Fanout learns it publishes
 * from IVS (its participant events), the broadcast goes live, viewers play
 * it, on the origin and on a replica (two seats per stage in these tests).
 */

const url = () => process.env.FANOUT_URL!;
const ADMIN_KEY = () => process.env.FANOUT_ADMIN_KEY!;
const broadcastId = `obs-${Date.now().toString(36)}`;

type Stats = {
  status: string;
  isPublisherLive: boolean;
  stages: { stageArn: string; role: string; feed: string; viewers: number }[];
};
const stats = async (): Promise<Stats> => {
  const response = await fetch(`${url()}/api/broadcasts/${broadcastId}/stats`, {
    headers: { "x-api-key": ADMIN_KEY() },
  });
  const body = await response.json();
  if (!body.success) throw new Error(`GET /stats: ${JSON.stringify(body)}`);
  return body.data;
};

/** The video plays: frames have a size and time moves on. */
async function expectPlaying(page: Page) {
  const video = page.getByTestId("player-video");
  await expect
    .poll(() => video.evaluate((v: HTMLVideoElement) => v.videoWidth), { timeout: 30_000 })
    .toBeGreaterThan(0);
  const t0 = await video.evaluate((v: HTMLVideoElement) => v.currentTime);
  await expect.poll(() => video.evaluate((v: HTMLVideoElement) => v.currentTime)).toBeGreaterThan(t0 + 0.5);
}

/**
 * An OBS stand-in: joins the hub named in the token, publishes the fake
 * camera and microphone, and answers every subscriber's offer with them
 * (the local media protocol, protocol/local-media.ts). Nothing of Fanout's
 * runs in this page: only the token ties it to the broadcast.
 */
async function publishAsObs(page: Page, token: string): Promise<void> {
  await page.evaluate(async (token) => {
    const payload = token.split(".")[1]!.replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(payload.padEnd(Math.ceil(payload.length / 4) * 4, "=")));
    const media = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
    const ws = new WebSocket(claims.events_url);
    const loopbackOnly = (sdp: string) =>
      sdp
        .split("\r\n")
        .filter((l) => !l.startsWith("a=candidate:") || ["127.0.0.1", "::1"].includes(l.split(" ")[4] ?? ""))
        .join("\r\n");
    const published = new Promise<void>((resolve, reject) => {
      ws.onopen = () => ws.send(JSON.stringify({ type: "join", token }));
      ws.onclose = () => reject(new Error("the hub closed the OBS connection"));
      ws.onmessage = async (event) => {
        const message = JSON.parse(event.data);
        if (message.type === "joined") ws.send(JSON.stringify({ type: "publish" }));
        if (message.type === "published" && message.published) resolve();
        if (message.type === "error") reject(new Error(`${message.code}: ${message.message}`));
        if (message.type !== "signal" || message.data?.kind !== "offer") return;
        const pc = new RTCPeerConnection();
        await pc.setRemoteDescription({ type: "offer", sdp: message.data.sdp });
        for (const transceiver of pc.getTransceivers()) {
          transceiver.direction = "sendonly";
          const kind = transceiver.receiver.track.kind;
          await transceiver.sender.replaceTrack(media.getTracks().find((t) => t.kind === kind) ?? null);
        }
        await pc.setLocalDescription(await pc.createAnswer());
        await new Promise<void>((done) => {
          if (pc.iceGatheringState === "complete") return done();
          pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && done());
          setTimeout(done, 3_000);
        });
        const answer = { kind: "answer", sdp: loopbackOnly(pc.localDescription!.sdp) };
        ws.send(JSON.stringify({ type: "signal", to: message.from, data: answer }));
      };
    });
    // Kept on the page: the connection lives as long as the page does.
    (window as unknown as { obs: WebSocket }).obs = ws;
    await published;
  }, token);
}

test.describe.configure({ mode: "serial" });

test.describe("a broadcast fed by OBS", () => {
  const contexts: BrowserContext[] = [];
  let studio: Page;
  let obs: Page;
  const viewers: Page[] = [];

  const open = async (browser: Browser, path: string) => {
    const context = await browser.newContext();
    contexts.push(context);
    const page = await context.newPage();
    await page.goto(`${url()}${path}`);
    return page;
  };

  test.afterAll(async () => {
    for (const context of contexts) await context.close().catch(() => {});
  });

  test("Go live with OBS gives OBS a token and publishes nothing from the page", async ({ browser }) => {
    studio = await open(browser, `/studio/${broadcastId}`);
    await studio.getByLabel("Admin key").fill(ADMIN_KEY());
    await studio.getByRole("button", { name: "Continue" }).click();
    await studio.getByTestId("go-live-obs").click();
    await expect(studio.getByTestId("obs-token")).not.toHaveValue("");
    await expect(studio.getByTestId("obs-state")).toContainText("Waiting for OBS");
    // The studio published nothing: no viewer has anything to play yet.
    expect((await stats()).isPublisherLive).toBe(false);
  });

  test("once OBS publishes, Fanout learns it from IVS and the studio and the broadcast show live", async ({
    browser,
  }) => {
    const token = await studio.getByTestId("obs-token").inputValue();
    obs = await open(browser, "/api/health");
    await publishAsObs(obs, token);
    // From IVS's participant events, polled in the live tick every few seconds: nothing reported it.
    await expect(studio.getByTestId("obs-state")).toContainText("OBS is publishing", { timeout: 30_000 });
    await expect.poll(async () => (await stats()).isPublisherLive, { timeout: 30_000 }).toBe(true);
  });

  test("viewers on the origin and on a replica stage play OBS's video", async ({ browser }) => {
    for (let i = 0; i < 3; i++) {
      viewers.push(await open(browser, `/watch/${broadcastId}`));
      await expectPlaying(viewers[i]!);
    }
    const s = await stats();
    const placed = await Promise.all(viewers.map((v) => v.getByTestId("player").getAttribute("data-stage")));
    const origin = s.stages.find((st) => st.role === "origin")!;
    expect(placed.slice(0, 2)).toEqual([origin.stageArn, origin.stageArn]);
    expect(s.stages.find((st) => st.stageArn === placed[2])).toMatchObject({ role: "edge", feed: "replica" });
  });

  test("when OBS stops streaming, the studio shows it waiting again", async () => {
    await obs.evaluate(() => (window as unknown as { obs: WebSocket }).obs.close());
    await expect(studio.getByTestId("obs-state")).toContainText("Waiting for OBS", { timeout: 30_000 });
    expect((await stats()).isPublisherLive).toBe(false);
  });
});
