import { parseArgs } from "node:util";
import { startEmulator } from "./server.ts";

/**
 * `npm run emulator -- [options]`: the IVS Real-Time emulator on its own.
 * `npm run dev` starts it for you; this is for running it by hand.
 */

const { values } = parseArgs({
  options: {
    port: { type: "string", default: process.env.IVS_EMULATOR_PORT ?? "8790" },
    host: { type: "string", default: "127.0.0.1" },
    region: { type: "string", default: process.env.AWS_REGION ?? "us-east-1" },
    state: { type: "string" },
    latency: { type: "string" },
    "error-rate": { type: "string" },
    "spike-rate": { type: "string" },
    "spike-ms": { type: "string" },
    fail: { type: "string", multiple: true },
    "aws-rate-limits": { type: "boolean", default: false },
    "subscribers-per-stage": { type: "string" },
    "stages-per-account": { type: "string" },
    quiet: { type: "boolean", default: false },
    help: { type: "boolean", default: false },
  },
});

if (values.help) {
  console.log(`Usage: npm run emulator -- [options]
  --port N                   listen port (default 8790, or IVS_EMULATOR_PORT)
  --host H                   listen address (default 127.0.0.1)
  --region R                 AWS region to emulate (default us-east-1)
  --state FILE               keep state in FILE across restarts
  --latency MS               add MS of latency to every operation
  --error-rate P             fail a fraction P (0..1) of operations with InternalServerException
  --spike-rate P             stall a fraction P (0..1) of operations for --spike-ms first
  --spike-ms MS              the length of a latency spike (default 2000)
  --fail Op=ErrorType        always answer ErrorType for operation Op (repeatable)
  --aws-rate-limits          enforce the documented IVS TPS quotas (429 beyond them)
  --subscribers-per-stage N  subscriber quota per stage (default 10000)
  --stages-per-account N     stage quota per account (default 1000)
  --quiet                    no request log`);
  process.exit(0);
}

const number = (value: string | undefined, name: string): number | undefined => {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) {
    console.error(`--${name} must be a non-negative number, got '${value}'`);
    process.exit(2);
  }
  return n;
};

const rules = (values.fail ?? []).map((spec) => {
  const [operation, errorType] = spec.split("=");
  if (!operation || !errorType) {
    console.error(`--fail takes Operation=ErrorType, got '${spec}'`);
    process.exit(2);
  }
  return { operation, errorType };
});

const emulator = await startEmulator({
  port: number(values.port, "port"),
  host: values.host,
  region: values.region,
  statePath: values.state,
  faults: {
    latencyMs: number(values.latency, "latency") ?? 0,
    errorRate: number(values["error-rate"], "error-rate") ?? 0,
    spikeRate: number(values["spike-rate"], "spike-rate") ?? 0,
    spikeMs: number(values["spike-ms"], "spike-ms") ?? 2_000,
    rules,
  },
  rateLimits: values["aws-rate-limits"] ? "aws" : undefined,
  quotas: {
    subscribersPerStage: number(values["subscribers-per-stage"], "subscribers-per-stage"),
    stagesPerAccount: number(values["stages-per-account"], "stages-per-account"),
  },
  log: values.quiet ? undefined : (line) => console.log(`[ivs-emulator] ${line}`),
});

console.log(`IVS Real-Time emulator listening on ${emulator.url}`);
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => void emulator.close().then(() => process.exit(0)));
}
