import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { LOCAL_CREDENTIALS } from "../../emulator/credentials.ts";
import { ivsClient, useEmulator } from "../support/emulator.ts";

/** Runs the script in its own process; asynchronously, since the emulator it talks to lives in this one. */
const keys = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  new Promise<{ status: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      ["scripts/keys.ts", ...args],
      { encoding: "utf8", env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env } },
      (error, stdout, stderr) => resolve({ status: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });

describe("npm run keys", () => {
  const ctx = useEmulator();

  it("imports a public key into the emulator and writes the private key and ARN to .dev.vars, keeping other lines", async () => {
    const devVars = join(mkdtempSync(join(tmpdir(), "fanout-keys-")), ".dev.vars");
    writeFileSync(devVars, "# mine\nADMIN_KEY=keep-this-admin-key\n");
    const result = await keys(["--endpoint", ctx.url, "--dev-vars", devVars]);
    expect(result.status, result.stderr).toBe(0);
    const written = readFileSync(devVars, "utf8");
    expect(written).toContain("# mine\nADMIN_KEY=keep-this-admin-key\n");
    const arn = /^TOKEN_KEY_ARN=(\S+)$/m.exec(written)?.[1];
    expect(/^TOKEN_PRIVATE_KEY=[A-Za-z0-9+/=]{100,}$/m.test(written)).toBe(true);
    expect(arn).toMatch(/^arn:aws:ivs:us-east-1:\d+:public-key\/\w+$/);
    expect((await ivsClient(ctx.url).getPublicKey(arn!)).publicKey.publicKeyMaterial).toContain("BEGIN PUBLIC KEY");
    // The private key is written, never printed.
    expect(result.stdout).not.toMatch(/TOKEN_PRIVATE_KEY=/);
  });

  it("says how to start the emulator when it cannot reach it", async () => {
    const devVars = join(mkdtempSync(join(tmpdir(), "fanout-keys-")), ".dev.vars");
    const result = await keys(["--endpoint", "http://127.0.0.1:9", "--dev-vars", devVars]);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/npm run dev/);
  });

  it("for AWS, refuses to run without credentials and names what is missing", async () => {
    const result = await keys(["--aws", "--region", "us-east-1"]);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY/);
  });

  it("for AWS, imports with the given credentials and prints the two secrets with --print", async () => {
    const result = await keys(["--aws", "--print", "--region", "us-east-1", "--endpoint", ctx.url], {
      AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
    });
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^TOKEN_KEY_ARN=arn:aws:ivs:/m);
    expect(result.stdout).toMatch(/^TOKEN_PRIVATE_KEY=\S+/m);
  });
});
