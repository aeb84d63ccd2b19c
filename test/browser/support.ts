import { expect, type Locator, type Page } from "@playwright/test";

/** What the browser tests share: the Fanout under test, its stats, a playing video, an OBS stand-in. */

export const fanoutUrl = () => process.env.FANOUT_URL!;
export const adminKey = () => process.env.FANOUT_ADMIN_KEY!;

export type Stats = {
  totalViewers: number;
  status: string;
  isPublisherLive: boolean;
  stages: { stageArn: string; role: string; feed: string; viewers: number }[];
};

/** `GET /stats` of a broadcast, with the admin key. */
export async function broadcastStats(broadcastId: string): Promise<Stats> {
  const response = await fetch(`${fanoutUrl()}/api/broadcasts/${broadcastId}/stats`, {
    headers: { "x-api-key": adminKey() },
  });
  const body = await response.json();
  if (!body.success) throw new Error(`GET /stats: ${JSON.stringify(body)}`);
  return body.data;
}

/** The video plays: frames have a size and time moves on; and an audio track came with it. */
export async function expectPlaying(video: Locator) {
  await expect
    .poll(() => video.evaluate((v: HTMLVideoElement) => v.videoWidth), { timeout: 30_000 })
    .toBeGreaterThan(0);
  const t0 = await video.evaluate((v: HTMLVideoElement) => v.currentTime);
  await expect.poll(() => video.evaluate((v: HTMLVideoElement) => v.currentTime)).toBeGreaterThan(t0 + 0.5);
  const audioTracks = await video.evaluate(
    (v: HTMLVideoElement) => (v.srcObject as MediaStream).getAudioTracks().length,
  );
  expect(audioTracks).toBeGreaterThan(0);
}

/**
 * An OBS stand-in: joins the hub named in the token, publishes the fake
 * camera and microphone, and answers every subscriber's offer with them
 * (the local media protocol, protocol/local-media.ts). Nothing of Fanout's
 * runs in this page: only the token ties it to the broadcast.
 */
export async function publishAsObs(page: Page, token: string): Promise<void> {
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
