import { expect, test } from "@playwright/test";
import { mkdirSync } from "node:fs";

/**
 * The dashboard shows what a broadcast costs and what an operator must act on: participant-hours,
 * the estimate at the configured price, stages now and at peak, and a warning while IVS refuses to
 * delete the broadcast's stages (performed with the emulator's fault injection).
 */

const url = () => process.env.FANOUT_URL!;
const emulatorUrl = () => process.env.FANOUT_EMULATOR_URL!;
const ADMIN_KEY = () => process.env.FANOUT_ADMIN_KEY!;
const SHOTS = "test-results/screenshots";
mkdirSync(SHOTS, { recursive: true });

async function api(broadcastId: string, path: string, body?: unknown) {
  const response = await fetch(`${url()}/api/broadcasts/${broadcastId}${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { "content-type": "application/json", "x-api-key": ADMIN_KEY() },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return (await response.json()) as { success: boolean; data: Record<string, unknown> };
}

const faults = (body?: unknown) =>
  fetch(`${emulatorUrl()}/_emulator/faults`, {
    method: body === undefined ? "DELETE" : "PUT",
    body: body === undefined ? undefined : JSON.stringify(body),
  });

test.afterEach(async () => {
  await faults();
});

test("the dashboard shows participant-hours, the estimated cost, stages at peak, and a warning while IVS will not delete a stage", async ({
  page,
}) => {
  const broadcastId = `cost-${Date.now().toString(36)}`;
  expect((await api(broadcastId, "/token/publisher", { userId: "host" })).success).toBe(true);
  for (let i = 0; i < 3; i++) {
    const joined = await fetch(`${url()}/api/broadcasts/${broadcastId}/token/viewer`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ userId: `viewer-${i}` }),
    });
    expect(joined.status).toBe(200);
  }

  await page.goto(`${url()}/dashboard/${broadcastId}`);
  await page.getByLabel("Admin key").fill(ADMIN_KEY());
  await page.getByRole("button", { name: "Continue" }).click();
  await expect(page.getByTestId("total-viewers")).toHaveText("3");
  await expect(page.getByTestId("dashboard-cost")).toBeVisible();
  await expect(page.getByTestId("estimated-cost")).toContainText("$");
  await expect(page.getByTestId("dashboard-cost")).toContainText("at $0.0100 per participant-hour");
  await expect(page.getByTestId("stages-now")).not.toHaveText("0");
  // The estimate is the participant-hours at the configured price.
  const usage = (await api(broadcastId, "/stats")).data.usage as {
    participantHours: { total: number };
    estimatedCost: number;
  };
  expect(usage.participantHours.total).toBeGreaterThan(0);
  expect(usage.estimatedCost).toBeCloseTo(usage.participantHours.total * 0.01, 4);

  // IVS refuses every DeleteStage: ending leaves the stages, and the operator is told.
  await faults({ rules: [{ operation: "DeleteStage", errorType: "InternalServerException" }] });
  const ended = await api(broadcastId, "/broadcast/end", {});
  expect((ended.data.pending as string[]).length).toBeGreaterThan(0);
  await expect(page.getByTestId("dashboard-warnings")).toContainText("delete failing", { timeout: 15_000 });
  await expect(page.getByTestId("dashboard-warnings")).toContainText("Fanout keeps retrying");
  await page.screenshot({ path: `${SHOTS}/dashboard-cost-and-warnings.png`, fullPage: true });

  // Once IVS deletes again, the warning goes and nothing is left.
  await faults();
  await expect(page.getByTestId("dashboard-warnings")).toHaveCount(0, { timeout: 30_000 });
  await expect(page.getByTestId("stages-now")).toHaveText("0");
});
