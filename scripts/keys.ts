import { spawnSync } from "node:child_process";
import { parseArgs } from "node:util";
import { LOCAL_CREDENTIALS } from "../emulator/credentials.ts";
import { IvsClient } from "../worker/ivs/client.ts";
import { readDevVars, updateDevVars } from "./dev-vars.ts";
import { createTokenKey } from "./token-key.ts";

/**
 * `npm run keys`: the key pair for self-signed participant tokens (docs/design.md, "Tokens").
 * Generates a P-384 pair, imports the public key into IVS (ImportPublicKey),
 * and stores the private key and the key's ARN where the Worker reads them:
 *
 *   npm run keys                 local: the emulator at IVS_ENDPOINT, written to .dev.vars
 *   npm run keys -- --aws        AWS (credentials from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 *                                AWS_REGION), stored with `wrangler secret put`
 *   npm run keys -- --aws --print   the same, but print the two secrets instead of storing them
 */

const { values } = parseArgs({
  options: {
    aws: { type: "boolean", default: false },
    print: { type: "boolean", default: false },
    region: { type: "string" },
    endpoint: { type: "string" },
    "dev-vars": { type: "string", default: ".dev.vars" },
    name: { type: "string", default: `fanout-${new Date().toISOString().slice(0, 10)}` },
  },
});

function fail(message: string): never {
  console.error(`npm run keys: ${message}`);
  process.exit(1);
}

if (values.aws) {
  const region = values.region ?? process.env.AWS_REGION;
  const accessKeyId = process.env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = process.env.AWS_SECRET_ACCESS_KEY;
  if (!region) fail("set AWS_REGION (or --region) to the region of your stages.");
  if (!accessKeyId || !secretAccessKey)
    fail("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for an identity allowed ivs:ImportPublicKey.");
  const ivs = new IvsClient({
    region,
    endpoint: values.endpoint ?? `https://ivsrealtime.${region}.amazonaws.com`,
    accessKeyId,
    secretAccessKey,
    sessionToken: process.env.AWS_SESSION_TOKEN,
  });
  const key = await createTokenKey(ivs, values.name).catch((error: Error) => fail(error.message));
  console.log(`Imported public key ${key.keyArn} into IVS (${region}).`);
  if (values.print) {
    console.log(
      "\nStore these as Worker secrets (the first is your private key: keep it out of shell history and logs):",
    );
    console.log(`TOKEN_PRIVATE_KEY=${key.privateKey}`);
    console.log(`TOKEN_KEY_ARN=${key.keyArn}`);
  } else {
    for (const [name, value] of [
      ["TOKEN_PRIVATE_KEY", key.privateKey],
      ["TOKEN_KEY_ARN", key.keyArn],
    ] as const) {
      // The value goes through stdin, never through the command line.
      const result = spawnSync("npx", ["wrangler", "secret", "put", name], {
        input: value,
        stdio: ["pipe", "inherit", "inherit"],
      });
      if (result.status !== 0)
        fail(`wrangler secret put ${name} failed; run again with --print to store the secrets yourself.`);
    }
    console.log("Stored TOKEN_PRIVATE_KEY and TOKEN_KEY_ARN as Worker secrets.");
  }
} else {
  const path = values["dev-vars"];
  const endpoint = values.endpoint ?? readDevVars(path).get("IVS_ENDPOINT") ?? "http://127.0.0.1:8790";
  const ivs = new IvsClient({ region: values.region ?? "us-east-1", endpoint, ...LOCAL_CREDENTIALS, maxRetries: 0 });
  const key = await createTokenKey(ivs, values.name).catch((error: Error) =>
    fail(
      `could not reach the IVS emulator at ${endpoint} (${error.message}). Is \`npm run dev\` or \`npm run emulator\` running?`,
    ),
  );
  updateDevVars(path, { TOKEN_PRIVATE_KEY: key.privateKey, TOKEN_KEY_ARN: key.keyArn });
  console.log(
    `Imported public key ${key.keyArn} into the emulator at ${endpoint}; wrote it and the private key to ${path}.`,
  );
}
