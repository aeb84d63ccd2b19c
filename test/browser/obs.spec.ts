import { expect, test, type Browser, type BrowserContext, type Page } from "@playwright/test";
import { adminKey, broadcastStats, expectPlaying, fanoutUrl, publishAsObs } from "./support.ts";

/**
 * A broadcast fed by OBS: the studio hands out OBS's server and token and
 * publishes nothing itself. The emulator cannot receive WHIP, so "OBS" here
 * is a page that joins the emulator's hub with that token and publishes its
 * fake camera, the way IVS sees an OBS participant: a publish-only
 * participant that never tells Fanout anything. Fanout learns it publishes
 * from IVS (its participant events), the broadcast goes live, viewers play
 * it, on the origin and on a replica (two seats per stage in these tests).
 */

const broadcastId = `obs-${Date.now().toString(36)}`;
const stats = () => broadcastStats(broadcastId);
const url = fanoutUrl;
const ADMIN_KEY = adminKey;

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
      await expectPlaying(viewers[i]!.getByTestId("player-video"));
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
