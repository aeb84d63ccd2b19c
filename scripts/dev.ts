import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { LOCAL_CREDENTIALS } from "../emulator/credentials.ts";
import { spawnEmulator } from "../emulator/process.ts";
import { IvsClient } from "../worker/ivs/client.ts";
import { readDevVars, updateDevVars } from "./dev-vars.ts";
import { createTokenKey } from "./token-key.ts";

/**
 * `npm run dev`: all of Fanout on this machine with no AWS account. Starts
 * the IVS emulator (state kept in .wrangler/), makes sure `.dev.vars` has
 * local credentials, an admin key and a token key imported into the emulator,
 * builds the pages (and rebuilds them on change), runs `wrangler dev`, and
 * prints the URL once the Worker answers. The cron runs every minute, as it
 * does deployed (wrangler dev's `/__scheduled`), and SIGUSR2 restarts the
 * Worker process alone, as a deploy or an eviction would (`npm run chaos`).
 */

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const DEV_VARS = `${ROOT}.dev.vars`;
const bin = (path: string) => `${ROOT}node_modules/${path}`;

const { values } = parseArgs({
  options: {
    port: { type: "string", default: "8787" },
    "emulator-port": { type: "string", default: "8790" },
    "ivs-latency": { type: "string" },
    "ivs-error-rate": { type: "string" },
    "ivs-fail": { type: "string", multiple: true },
    "ivs-aws-rate-limits": { type: "boolean", default: false },
    "emulator-state": { type: "string" },
    "persist-to": { type: "string" },
    var: { type: "string", multiple: true },
    "api-tokens": { type: "boolean", default: false },
  },
});

const children: ChildProcess[] = [];
let stopping = false;
function stop(code: number): void {
  if (stopping) return;
  stopping = true;
  for (const child of children) child.kill("SIGTERM");
  setTimeout(() => process.exit(code), 500).unref();
}
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => stop(0));

/** Children being restarted on purpose: their exit does not stop everything. */
const restarting = new Set<ChildProcess>();

function run(name: string, command: string, args: string[]): ChildProcess {
  const child = spawn(process.execPath, [command, ...args], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
    // No metrics, and no fetch of the `Request.cf` placeholder from workers.cloudflare.com: dev stays on loopback.
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false" },
  });
  const prefix = `[${name}] `;
  const forward = (chunk: Buffer) => {
    for (const line of chunk.toString().split("\n")) if (line.trim()) console.log(prefix + line);
  };
  child.stdout!.on("data", forward);
  child.stderr!.on("data", forward);
  child.on("exit", (code) => {
    if (restarting.delete(child)) return;
    if (!stopping) {
      console.error(`${prefix}exited (${code ?? "signal"}); stopping.`);
      stop(code ?? 1);
    }
  });
  children.push(child);
  return child;
}

// 1. The IVS emulator.
const emulatorArgs = [
  "--port",
  values["emulator-port"],
  "--state",
  values["emulator-state"] ?? `${ROOT}.wrangler/ivs-emulator/state.json`,
  "--quiet",
];
if (values["ivs-latency"]) emulatorArgs.push("--latency", values["ivs-latency"]);
if (values["ivs-error-rate"]) emulatorArgs.push("--error-rate", values["ivs-error-rate"]);
for (const rule of values["ivs-fail"] ?? []) emulatorArgs.push("--fail", rule);
if (values["ivs-aws-rate-limits"]) emulatorArgs.push("--aws-rate-limits");
const emulator = await spawnEmulator(emulatorArgs).catch((error: Error) => {
  console.error(`Could not start the IVS emulator on port ${values["emulator-port"]}: ${error.message}`);
  console.error("Is another `npm run dev` running? Use --emulator-port to pick another port.");
  process.exit(1);
});
children.push(emulator.child);
console.log(`[ivs] emulator at ${emulator.url}`);

// 2. Local secrets: the emulator's credentials and endpoint, an admin key, a token key it knows.
const vars = readDevVars(DEV_VARS);
updateDevVars(DEV_VARS, {
  IVS_ENDPOINT: emulator.url,
  AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
  AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
  ...(!vars.get("ADMIN_KEY") && { ADMIN_KEY: randomBytes(24).toString("base64url") }),
});
const ivs = new IvsClient({ region: "us-east-1", endpoint: emulator.url, ...LOCAL_CREDENTIALS, maxRetries: 0 });
const keyArn = vars.get("TOKEN_KEY_ARN");
const keyKnown =
  keyArn &&
  vars.get("TOKEN_PRIVATE_KEY") &&
  (await ivs.getPublicKey(keyArn).then(
    () => true,
    () => false,
  ));
if (!keyKnown) {
  const key = await createTokenKey(ivs, "fanout-dev");
  updateDevVars(DEV_VARS, { TOKEN_PRIVATE_KEY: key.privateKey, TOKEN_KEY_ARN: key.keyArn });
  console.log(`[keys] imported a token key into the emulator (${key.keyArn})`);
}

// 3. The pages, rebuilt on change. The Worker starts after the first build: a rebuild under a running
// `wrangler dev` restarts the Worker, which would cut the first requests short.
const pages = run("pages", bin("vite/bin/vite.js"), ["build", "--watch", "--logLevel", "warn"]);
await new Promise<void>((resolve) => {
  const firstBuild = (chunk: Buffer) => {
    if (!chunk.toString().includes("✔ done")) return;
    pages.stdout!.off("data", firstBuild);
    resolve();
  };
  pages.stdout!.on("data", firstBuild);
});

// 4. The Worker.
const port = values.port;
const persist = values["persist-to"] ? ["--persist-to", values["persist-to"]] : [];
// `--var NAME=VALUE` overrides a [vars] setting for this run (STAGE_CAPACITY=500, RATE_LIMITING=off, ...).
const overrides = (values.var ?? []).flatMap((pair) => {
  const eq = pair.indexOf("=");
  if (eq < 1) {
    console.error(`--var takes NAME=VALUE, got '${pair}'`);
    process.exit(2);
  }
  return ["--var", `${pair.slice(0, eq)}:${pair.slice(eq + 1)}`];
});
// Without a token key the Worker asks IVS for every token (CreateParticipantToken), as a deployment without one would.
if (values["api-tokens"]) overrides.push("--var", "TOKEN_PRIVATE_KEY:", "--var", "TOKEN_KEY_ARN:");
const workerArgs = [
  "dev",
  "--port",
  port,
  "--ip",
  "127.0.0.1",
  "--show-interactive-dev-session=false",
  // Lets this script run the cron (GET /__scheduled), as Cloudflare does every minute once deployed.
  "--test-scheduled",
  ...persist,
  ...overrides,
];
let worker = run("worker", bin("wrangler/bin/wrangler.js"), workerArgs);

const url = `http://127.0.0.1:${port}`;

// SIGUSR2: the Worker process is killed and started again; Durable Objects keep their storage.
process.on("SIGUSR2", () => {
  const old = worker;
  restarting.add(old);
  old.once("exit", () => {
    children.splice(children.indexOf(old), 1);
    console.log("[dev] worker killed; starting it again");
    worker = run("worker", bin("wrangler/bin/wrangler.js"), workerArgs);
  });
  // SIGTERM, so that wrangler takes its workerd down with it (a SIGKILL would orphan it on the port).
  old.kill("SIGTERM");
});

// The cron, every minute on the minute, as deployed (wrangler.toml `[triggers]`).
const cron = setInterval(() => {
  void fetch(`${url}/__scheduled?cron=${encodeURIComponent("* * * * *")}`).catch(() => undefined);
}, 60_000);
cron.unref();
for (let i = 0; i < 240 && !stopping; i++) {
  const up = await fetch(`${url}/health`).then(
    (r) => r.ok,
    () => false,
  );
  if (up) {
    console.log(`
  Fanout is running at ${url}

  Landing page   ${url}/
  Health         ${url}/health
  IVS emulator   ${emulator.url}
  Admin key      ADMIN_KEY in .dev.vars

  Ctrl-C stops everything.
`);
    break;
  }
  await new Promise((resolve) => setTimeout(resolve, 500));
}
