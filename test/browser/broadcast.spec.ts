import { expect, test, type Browser, type BrowserContext, type Page } from "@playwright/test";
import { mkdirSync } from "node:fs";
import { broadcastStats, expectPlaying as expectVideo } from "./support.ts";

/**
 * A person goes live from the studio and an audience watches through the
 * share link, on local media (the emulator's hub, WebRTC between tabs), with
 * two seats per stage so the audience spreads over an origin and replicas.
 */

const url = () => process.env.FANOUT_URL!;
const ADMIN_KEY = () => process.env.FANOUT_ADMIN_KEY!;
const broadcastId = `e2e-${Date.now().toString(36)}`;
const SHOTS = "test-results/screenshots";
mkdirSync(SHOTS, { recursive: true });

const stats = () => broadcastStats(broadcastId);

/** The viewer page's video plays, with audio. */
const expectPlaying = (page: Page) => expectVideo(page.getByTestId("player-video"));

async function openStudio(browser: Browser, key: string): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${url()}/studio/${broadcastId}`);
  await page.getByLabel("Admin key").fill(key);
  await page.getByRole("button", { name: "Continue" }).click();
  return { context, page };
}

async function openViewer(browser: Browser, viewport = { width: 1280, height: 720 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  await page.goto(`${url()}/watch/${broadcastId}`);
  return { context, page };
}

test.describe.configure({ mode: "serial" });

test.describe("broadcasting and watching in a browser", () => {
  let studio: { context: BrowserContext; page: Page };
  const viewers: { context: BrowserContext; page: Page }[] = [];

  test.afterAll(async () => {
    for (const v of viewers) await v.context.close().catch(() => {});
    await studio?.context.close().catch(() => {});
  });

  test("a wrong admin key in the studio shows an error and starts nothing", async ({ browser }) => {
    const wrong = await openStudio(browser, "not-the-key");
    await expect(wrong.page.getByRole("alert")).toContainText("admin key is not right");
    await expect(wrong.page.getByTestId("go-live")).toHaveCount(0);
    const s = await stats();
    expect(s.status).toBe("idle");
    expect(s.stages).toEqual([]);
    await wrong.context.close();
  });

  test("the studio goes live with the camera and microphone", async ({ browser }) => {
    studio = await openStudio(browser, ADMIN_KEY());
    const page = studio.page;
    await expect
      .poll(() => page.getByTestId("preview").evaluate((v: HTMLVideoElement) => v.videoWidth))
      .toBeGreaterThan(0);
    await page.getByTestId("go-live").click();
    await expect(page.getByTestId("studio-status")).toHaveText(/Live/);
    await expect(page.getByTestId("stage-row")).toHaveCount(1);
    await expect(page.getByTestId("share-link")).toHaveValue(`${url()}/watch/${broadcastId}`);
  });

  test("three viewers on the share link each play video with audio, and the studio counts them", async ({
    browser,
  }) => {
    for (let i = 0; i < 3; i++) {
      viewers.push(await openViewer(browser));
      await expectPlaying(viewers[i]!.page);
    }
    await expect(studio.page.getByTestId("studio-viewers")).toHaveText("3");
    await studio.page.screenshot({ path: `${SHOTS}/studio-live.png`, fullPage: true });
    await viewers[0]!.page.screenshot({ path: `${SHOTS}/viewer-playing.png` });
  });

  test("with two seats per stage the third viewer lands on a second stage and plays the broadcaster's replica", async () => {
    const s = await stats();
    const origin = s.stages.find((st) => st.role === "origin")!;
    const placed = await Promise.all(viewers.map((v) => v.page.getByTestId("player").getAttribute("data-stage")));
    expect(placed.slice(0, 2)).toEqual([origin.stageArn, origin.stageArn]);
    const edge = s.stages.find((st) => st.stageArn === placed[2]);
    expect(edge).toMatchObject({ role: "edge", feed: "replica", viewers: 1 });
    // It played above (expectPlaying), fed by replication from the origin; the studio lists the stage.
    await expect(studio.page.getByTestId("stage-table")).toContainText(placed[2]!.split("/").pop()!);
    await expect(studio.page.getByTestId("stage-table")).toContainText("edge");
  });

  test("a viewer closing the tab leaves the studio's count at 2 within the presence TTL", async () => {
    const leaving = viewers.pop()!;
    await leaving.context.close();
    await expect(studio.page.getByTestId("studio-viewers")).toHaveText("2", { timeout: 60_000 });
  });

  test("a viewer whose network drops briefly recovers by itself and plays again", async () => {
    const viewer = viewers[0]!;
    await viewer.context.setOffline(true);
    await expect(viewer.page.getByTestId("player")).toHaveAttribute("data-status", "reconnecting");
    await viewer.page.waitForTimeout(2_000);
    await viewer.context.setOffline(false);
    await expect(viewer.page.getByTestId("player")).toHaveAttribute("data-status", "live", { timeout: 30_000 });
    await expectPlaying(viewer.page);
  });

  test("the viewer page fits a phone, and the dashboard shows the stages, the chart and the events", async ({
    browser,
  }) => {
    const phone = await openViewer(browser, { width: 375, height: 740 });
    viewers.push(phone);
    await expectPlaying(phone.page);
    const overflow = await phone.page.evaluate(() => document.documentElement.scrollWidth);
    expect(overflow).toBeLessThanOrEqual(375);
    await phone.page.screenshot({ path: `${SHOTS}/viewer-phone.png` });

    const dashboard = await studio.context.newPage();
    await dashboard.goto(`${url()}/dashboard/${broadcastId}`);
    await dashboard.getByLabel("Admin key").fill(ADMIN_KEY());
    await dashboard.getByRole("button", { name: "Continue" }).click();
    await expect(dashboard.getByTestId("total-viewers")).toHaveText("3");
    await expect(dashboard.getByTestId("dashboard-events")).toContainText("stage created");
    await expect(dashboard.getByTestId("viewers-chart").locator("canvas")).toHaveCount(1);
    await dashboard.screenshot({ path: `${SHOTS}/dashboard.png`, fullPage: true });
    await dashboard.close();
  });

  test("when the broadcaster stops, every viewer shows that the broadcast ended", async () => {
    await studio.page.getByTestId("stop").click();
    for (const viewer of viewers) {
      await expect(viewer.page.getByTestId("player")).toHaveAttribute("data-status", "ended", { timeout: 10_000 });
      await expect(viewer.page.getByTestId("player-message")).toContainText("This broadcast has ended");
    }
    await viewers[0]!.page.screenshot({ path: `${SHOTS}/viewer-ended.png` });
  });
});
