import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

/**
 * The IAM policy in the README is the one operators paste: it must allow every
 * IVS operation Fanout calls (read from the IVS client's source), name only
 * real operations (the AWS service model kept as test data), and scope each
 * as AWS's Service Authorization Reference allows.
 */

const root = new URL("../../", import.meta.url);
const readme = readFileSync(new URL("README.md", root), "utf8");
const block = /<!-- iam-policy -->\s*```json\n([\s\S]*?)```\s*<!-- \/iam-policy -->/.exec(readme)?.[1];

type Statement = { Sid?: string; Effect: string; Action: string[]; Resource: string | string[] };
const policy = JSON.parse(block ?? "null") as { Version: string; Statement: Statement[] } | null;

/** Every operation the IVS client sends (`#call("Operation"` and its paged and tagged variants). */
const called = [
  ...new Set(
    [
      ...readFileSync(new URL("worker/ivs/client.ts", root), "utf8").matchAll(
        /#call\w*(?:<[^>]*>)?\(\s*"([A-Za-z]+)"/g,
      ),
    ].map((m) => m[1]!),
  ),
];
const modelled = Object.keys(
  (
    JSON.parse(readFileSync(new URL("test/fixtures/aws/ivs-realtime-2020-07-14.service-2.json", root), "utf8")) as {
      operations: Record<string, unknown>;
    }
  ).operations,
);

const allowed = (action: string) =>
  policy!.Statement.filter((s) => s.Effect === "Allow" && s.Action.includes(action)).flatMap((s) =>
    Array.isArray(s.Resource) ? s.Resource : [s.Resource],
  );

describe("the IAM policy in the README", () => {
  it("is a JSON policy document between its markers", () => {
    expect(policy).toMatchObject({ Version: "2012-10-17" });
    expect(policy!.Statement.length).toBeGreaterThan(0);
  });

  it("allows every IVS operation Fanout calls, and names only operations IVS has", () => {
    expect(called.length).toBeGreaterThan(10);
    for (const operation of called) expect(allowed(`ivs:${operation}`), operation).not.toEqual([]);
    for (const statement of policy!.Statement)
      for (const action of statement.Action) {
        expect(action).toMatch(/^ivs:/);
        // TagResource is IAM's action for the tags CreateStage sets; every other action is an operation of the model.
        if (action !== "ivs:TagResource") expect(modelled).toContain(action.slice(4));
      }
  });

  it("scopes stage operations to stage ARNs and key operations to public-key ARNs; listings naming no resource get *", () => {
    const stageOps = called.filter((op) => !/PublicKey|ListStages|ListPublicKeys/.test(op));
    for (const op of stageOps) expect(allowed(`ivs:${op}`)).toEqual(["arn:aws:ivs:REGION:ACCOUNT:stage/*"]);
    for (const op of ["ImportPublicKey", "GetPublicKey", "DeletePublicKey"])
      expect(allowed(`ivs:${op}`)).toEqual(["arn:aws:ivs:REGION:ACCOUNT:public-key/*"]);
    for (const op of ["ListStages", "ListPublicKeys"]) expect(allowed(`ivs:${op}`)).toEqual(["*"]);
    expect(allowed("ivs:TagResource")).toEqual(allowed("ivs:CreateStage"));
    expect(JSON.stringify(policy)).not.toContain(":ACCOUNT:*");
  });
});
