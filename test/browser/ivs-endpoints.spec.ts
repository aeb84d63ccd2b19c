import { expect, test, type Page } from "@playwright/test";

/**
 * The production media path, as far as a machine without AWS allows: stages
 * report IVS's endpoints (`*.live-video.net`, unreachable here: Chromium
 * resolves no name but loopback's), so the tokens the Worker issues send the
 * studio and the viewer to the IVS Web Broadcast SDK. It must load, fail to
 * connect with a clear message on the page, and throw nothing uncaught.
 */

const url = () => process.env.FANOUT_URL!;
const emulator = () => process.env.FANOUT_EMULATOR_URL!;
const broadcastId = `ivs-${Date.now().toString(36)}`;

async function endpoints(value: { events: string; whip: string } | null) {
  const response = await fetch(`${emulator()}/_emulator/endpoints`, { method: "PUT", body: JSON.stringify(value) });
  expect(response.ok).toBe(true);
}

/** Every uncaught exception of a page, and the scripts it loaded (chunk names are hashed: known by their text). */
function watch(page: Page) {
  const uncaught: string[] = [];
  const scripts: Promise<string>[] = [];
  page.on("pageerror", (error) => uncaught.push(error.message));
  page.on("response", (response) => {
    if (response.url().endsWith(".js")) scripts.push(response.text().catch(() => ""));
  });
  /** A string only the IVS SDK's bundle holds; one only the local transport holds. */
  const loaded = async (marker: string) => (await Promise.all(scripts)).some((text) => text.includes(marker));
  return {
    uncaught,
    sdkLoaded: () => loaded("real-time-connection-forced-leave"),
    localLoaded: () => loaded("Could not connect to the stage."),
  };
}

test.describe.configure({ mode: "serial" });

test.beforeAll(() =>
  endpoints({ events: "wss://global.events.live-video.net", whip: "https://global.whip.live-video.net" }),
);
test.afterAll(() => endpoints(null));

test("with IVS's endpoints the studio loads the IVS SDK and shows a clear connection error, nothing uncaught", async ({
  page,
}) => {
  const seen = watch(page);
  await page.goto(`${url()}/studio/${broadcastId}`);
  await page.getByLabel("Admin key").fill(process.env.FANOUT_ADMIN_KEY!);
  await page.getByRole("button", { name: "Continue" }).click();
  await page.getByTestId("go-live").click();
  await expect(page.getByTestId("studio-error")).toBeVisible({ timeout: 90_000 });
  await expect(page.getByTestId("studio-error")).not.toBeEmpty();
  await expect(page.getByTestId("studio-status")).not.toHaveText(/Live/);
  // The SDK's module was loaded (the local transport's was not): the production code path ran.
  expect(await seen.sdkLoaded()).toBe(true);
  expect(await seen.localLoaded()).toBe(false);
  expect(seen.uncaught).toEqual([]);
});

test("with IVS's endpoints the viewer loads the IVS SDK and says it cannot connect, nothing uncaught", async ({
  page,
}) => {
  const seen = watch(page);
  await page.goto(`${url()}/watch/${broadcastId}`);
  const message = page.getByTestId("player-message");
  await expect(page.getByTestId("player")).toHaveAttribute("data-status", "reconnecting", { timeout: 90_000 });
  await expect(message).not.toHaveText(/^\s*$/);
  expect(await seen.sdkLoaded()).toBe(true);
  expect(seen.uncaught).toEqual([]);
});
