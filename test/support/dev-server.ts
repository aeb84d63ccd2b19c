import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "./ports.ts";

/**
 * `npm run dev` as a user runs it, on free loopback ports, with its state in
 * a scratch folder of its own; resolves once it prints its URL.
 */
export interface DevServer {
  url: string;
  emulatorUrl: string;
  scratch: string;
  /** Everything it printed so far. */
  output(): string;
  /** Sends `npm run dev` a signal (SIGUSR2 restarts the Worker process alone). */
  signal(signal: NodeJS.Signals): void;
  stop(): Promise<void>;
}

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

export async function startDev(args: string[] = [], env: NodeJS.ProcessEnv = process.env): Promise<DevServer> {
  const [port, emulatorPort] = [await freePort(), await freePort()];
  const scratch = mkdtempSync(join(tmpdir(), "fanout-dev-"));
  const child = spawn(
    process.execPath,
    [
      "scripts/dev.ts",
      "--port",
      String(port),
      "--emulator-port",
      String(emulatorPort),
      "--emulator-state",
      join(scratch, "ivs.json"),
      "--persist-to",
      join(scratch, "wrangler"),
      ...args,
    ],
    { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      const match = /Fanout is running at (http:\/\/\S+)/.exec(output);
      if (match) resolve(match[1]!);
    });
    child.once("exit", (code) => reject(new Error(`npm run dev exited (${code}):\n${output.slice(-3000)}`)));
  });
  return {
    url,
    emulatorUrl: /\[ivs\] emulator at (\S+)/.exec(output)?.[1] ?? "",
    scratch,
    output: () => output,
    signal: (signal) => void child.kill(signal),
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}
