import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../worker/config.ts";

const minimal = {
  AWS_REGION: "us-east-1",
  AWS_ACCESS_KEY_ID: "AKIAEXAMPLE",
  AWS_SECRET_ACCESS_KEY: "secret-value",
  ADMIN_KEY: "an-admin-key-of-enough-length",
};

const failureOf = (env: object) => {
  try {
    loadConfig(env);
  } catch (error) {
    return error as ConfigError;
  }
  throw new Error("expected a configuration error");
};

describe("configuration", () => {
  it("defaults to AWS's endpoint for the region, API tokens and the contract's token durations", () => {
    const config = loadConfig({ ...minimal, IVS_ENDPOINT: "" });
    expect(config.ivs.endpoint).toBe("https://ivsrealtime.us-east-1.amazonaws.com");
    expect(config.tokenKey).toBeUndefined();
    expect(config.tokenMinutes).toEqual({ viewer: 60, publisher: 240, obs: 720 });
    expect(config.viewerAccess).toBe("open");
    expect(config.mode).toBe("replica");
  });

  it("reads numbers from string vars and an endpoint override", () => {
    const config = loadConfig({
      ...minimal,
      IVS_ENDPOINT: "http://127.0.0.1:8790/",
      VIEWER_TOKEN_MINUTES: "15",
      IVS_MAX_RETRIES: "0",
    });
    expect(config.ivs.endpoint).toBe("http://127.0.0.1:8790");
    expect(config.tokenMinutes.viewer).toBe(15);
    expect(config.ivs.maxRetries).toBe(0);
  });

  it("self-signs when both token key variables are set", () => {
    const config = loadConfig({
      ...minimal,
      TOKEN_PRIVATE_KEY: "MIG2AgEA",
      TOKEN_KEY_ARN: "arn:aws:ivs:us-east-1:123456789012:public-key/abc123",
    });
    expect(config.tokenKey).toEqual({
      privateKey: "MIG2AgEA",
      keyArn: "arn:aws:ivs:us-east-1:123456789012:public-key/abc123",
    });
  });

  it.each([
    ["AWS_SECRET_ACCESS_KEY", { ...minimal, AWS_SECRET_ACCESS_KEY: undefined }, /is not set/],
    ["ADMIN_KEY", { ...minimal, ADMIN_KEY: "short" }, /at least 16/],
    ["AWS_REGION", { ...minimal, AWS_REGION: "mars" }, /AWS region/],
    ["IVS_ENDPOINT", { ...minimal, IVS_ENDPOINT: "ftp://x" }, /http/],
    ["TOKEN_KEY_ARN", { ...minimal, TOKEN_PRIVATE_KEY: "MIG2AgEA" }, /together/],
    ["TOKEN_KEY_ARN", { ...minimal, TOKEN_PRIVATE_KEY: "k", TOKEN_KEY_ARN: "not-an-arn" }, /public key ARN/],
    ["VIEWER_KEY", { ...minimal, VIEWER_ACCESS: "key" }, /VIEWER_ACCESS/],
    ["VIEWER_TOKEN_MINUTES", { ...minimal, VIEWER_TOKEN_MINUTES: "0" }, /./],
    ["FANOUT_MODE", { ...minimal, FANOUT_MODE: "mirror" }, /./],
  ])("fails loudly naming %s when it is missing or invalid", (variable, env, problem) => {
    const error = failureOf(env);
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.variable).toBe(variable);
    expect(error.message).toContain(variable);
    expect(error.message).toMatch(problem);
  });

  it("never puts a secret's value in its error message", () => {
    const error = failureOf({ ...minimal, ADMIN_KEY: "leak-me" });
    expect(error.message).not.toContain("leak-me");
  });
});
