import { expect, test, type Page } from "@playwright/test";
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";

/**
 * An integrator's own front end: examples/viewer (plain HTML and JavaScript) served from another
 * origin, playing a broadcast through Fanout's HTTP API with CORS and HTTP heartbeats only. The
 * origin it is served from is the one CORS_ORIGINS allows (global-setup.ts); served from any
 * other, the browser refuses its calls.
 */

const url = () => process.env.FANOUT_URL!;
const broadcastId = `example-${Date.now().toString(36)}`;
const EXAMPLE = fileURLToPath(new URL("../../examples/viewer/", import.meta.url));

/** A static server for the example, as an integrator's own site would be. */
async function serveExample(port: number): Promise<Server> {
  const server = createServer((req, res) => {
    const file = new URL(req.url!, "http://x").pathname === "/viewer.js" ? "viewer.js" : "index.html";
    res.setHeader("content-type", file.endsWith(".js") ? "text/javascript" : "text/html");
    res.end(readFileSync(`${EXAMPLE}${file}`));
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return server;
}

/** A publisher on the emulator's hub with Fanout's OBS token: the broadcast is live without the studio. */
async function broadcasting(page: Page) {
  const response = await fetch(`${url()}/api/broadcasts/${broadcastId}/token/publisher`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-api-key": process.env.FANOUT_ADMIN_KEY! },
    body: JSON.stringify({ userId: "host", encoder: "obs" }),
  });
  const { data } = await response.json();
  await page.goto(`${url()}/api/health`);
  await page.evaluate(async (token: string) => {
    const payload = token.split(".")[1]!.replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(payload.padEnd(Math.ceil(payload.length / 4) * 4, "=")));
    const media = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
    const ws = new WebSocket(claims.events_url);
    (window as unknown as { obs: WebSocket }).obs = ws;
    await new Promise<void>((resolve) => {
      ws.onopen = () => ws.send(JSON.stringify({ type: "join", token }));
      ws.onmessage = async (event) => {
        const message = JSON.parse(event.data);
        if (message.type === "joined") ws.send(JSON.stringify({ type: "publish" }));
        if (message.type === "published") resolve();
        if (message.type !== "signal" || message.data?.kind !== "offer") return;
        const pc = new RTCPeerConnection();
        await pc.setRemoteDescription({ type: "offer", sdp: message.data.sdp });
        for (const t of pc.getTransceivers()) {
          t.direction = "sendonly";
          await t.sender.replaceTrack(media.getTracks().find((m) => m.kind === t.receiver.track.kind) ?? null);
        }
        await pc.setLocalDescription(await pc.createAnswer());
        await new Promise<void>((done) => {
          pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && done();
          setTimeout(done, 3_000);
        });
        ws.send(
          JSON.stringify({ type: "signal", to: message.from, data: { kind: "answer", sdp: pc.localDescription!.sdp } }),
        );
      };
    });
  }, data.token as string);
}

test.describe.configure({ mode: "serial" });

test.describe("the example viewer on another origin", () => {
  const servers: Server[] = [];
  test.afterAll(() => {
    for (const server of servers) server.close();
  });

  test("plays the broadcast through the HTTP API with CORS, heartbeating over HTTP only", async ({ browser }) => {
    const publisher = await browser.newPage();
    await broadcasting(publisher);
    servers.push(await serveExample(Number(process.env.FANOUT_EXAMPLE_PORT)));
    const page = await browser.newPage();
    const sockets: string[] = [];
    page.on("websocket", (ws) => sockets.push(ws.url()));
    const heartbeat = page.waitForRequest((r) => r.url().endsWith("/viewer/heartbeat") && r.method() === "POST", {
      timeout: 45_000,
    });
    const example = `http://127.0.0.1:${process.env.FANOUT_EXAMPLE_PORT}/`;
    await page.goto(`${example}?fanout=${encodeURIComponent(url())}&broadcast=${broadcastId}`);
    const video = page.locator("#video");
    await expect
      .poll(() => video.evaluate((v: HTMLVideoElement) => v.videoWidth), { timeout: 30_000 })
      .toBeGreaterThan(0);
    const t0 = await video.evaluate((v: HTMLVideoElement) => v.currentTime);
    await expect.poll(() => video.evaluate((v: HTMLVideoElement) => v.currentTime)).toBeGreaterThan(t0 + 0.5);
    await expect(page.locator("#status")).toHaveAttribute("data-status", "live");
    // Presence by HTTP heartbeats, answered across origins; no Fanout socket (only the media hub's).
    const answer = await (await heartbeat).response();
    expect(answer?.status()).toBe(200);
    expect(await answer?.headerValue("access-control-allow-origin")).toBe(example.slice(0, -1));
    expect(sockets.filter((s) => s.startsWith(url().replace(/^http/, "ws")))).toEqual([]);
    await page.close();
    await publisher.close();
  });

  test("served from an origin CORS_ORIGINS does not allow, its calls are refused by the browser", async ({
    browser,
  }) => {
    const other = await serveExample(0);
    servers.push(other);
    const page = await browser.newPage();
    const refused: string[] = [];
    page.on("requestfailed", (r) => refused.push(r.url()));
    const port = (other.address() as AddressInfo).port;
    await page.goto(`http://127.0.0.1:${port}/?fanout=${encodeURIComponent(url())}&broadcast=${broadcastId}`);
    await expect.poll(() => refused.some((u) => u.endsWith("/token/viewer")), { timeout: 15_000 }).toBe(true);
    await expect(page.locator("#status")).toHaveAttribute("data-status", "waiting");
    await expect(page.locator("#status")).toContainText(/fetch/i);
    await page.close();
  });
});
