import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";

/**
 * Runs the emulator in a process of its own, as `npm run dev` and the Worker
 * tests do, and resolves with its URL once it listens.
 */
export interface EmulatorProcess {
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

const MAIN = fileURLToPath(new URL("./main.ts", import.meta.url).href);

export function spawnEmulator(
  args: string[] = [],
  options: { onLine?: (line: string) => void } = {},
): Promise<EmulatorProcess> {
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ["ignore", "pipe", "inherit"] });
  const stop = () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once("exit", () => resolve());
      child.kill("SIGTERM");
    });
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    let url: string | undefined;
    lines.on("line", (line) => {
      const match = /listening on (\S+)/.exec(line);
      if (!url && match) {
        url = match[1]!;
        resolve({ url, child, stop });
      } else {
        options.onLine?.(line);
      }
    });
    child.once("exit", (code) => {
      if (!url) reject(new Error(`the IVS emulator exited (code ${code}) before it listened`));
    });
  });
}
