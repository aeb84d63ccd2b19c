import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { API_TYPES, DEPLOYMENT_TYPES, apiTypes, deploymentTypes } from "../../scripts/api-types.ts";

describe("the pages' API types", () => {
  it("are what the Worker's route schemas generate today (run `npm run api:types` after changing a route)", async () => {
    expect(readFileSync(API_TYPES, "utf8")).toBe(await apiTypes());
  });

  it("cover the deployment's routes too (health, recent broadcasts), from the same schemas", async () => {
    expect(readFileSync(DEPLOYMENT_TYPES, "utf8")).toBe(await deploymentTypes());
  });
});
