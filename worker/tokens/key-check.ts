import { exportJWK, importSPKI } from "jose";
import { LRUCache } from "lru-cache";
import { ConfigError, type Config } from "../config.ts";
import { IvsError } from "../ivs/error.ts";
import { IvsClient } from "../ivs/client.ts";
import { signingKey } from "./participant-token.ts";

/**
 * The token key checked the way IVS will check it, for `/health`: the private key parses
 * (PKCS#8 or SEC1, P-384), and its public half is the one IVS has under TOKEN_KEY_ARN
 * (GetPublicKey). A mismatch would fail every join with IVS refusing the token; here it fails
 * the operator's first `curl /health`, naming the variable. One check per key per isolate every
 * ten minutes (GetPublicKey is 3 TPS per account, and /health is open). If IVS cannot be asked
 * (throttled, unreachable) the key is not blamed.
 */

const checked = new LRUCache<string, Promise<void>>({ max: 4, ttl: 600_000 });

export function checkTokenKey(config: Config): Promise<void> {
  const key = config.tokenKey;
  if (!key) return Promise.resolve();
  const cacheKey = `${key.keyArn}|${key.privateKey}`;
  let check = checked.get(cacheKey);
  if (!check) {
    check = verify(config, key);
    checked.set(cacheKey, check);
    check.catch(() => checked.delete(cacheKey));
  }
  return check;
}

async function verify(config: Config, key: { privateKey: string; keyArn: string }): Promise<void> {
  const privateJwk = await exportJWK(await signingKey(key.privateKey));
  let material: string;
  try {
    const { publicKey } = await new IvsClient({ ...config.ivs, maxRetries: 0 }).getPublicKey(key.keyArn);
    if (!publicKey.publicKeyMaterial) return;
    material = publicKey.publicKeyMaterial;
  } catch (error) {
    if (error instanceof IvsError && error.kind === "not_found")
      throw new ConfigError(
        "TOKEN_KEY_ARN",
        "is not a public key IVS has in this account and region (run `npm run keys`)",
      );
    return;
  }
  const publicJwk = await exportJWK(await importSPKI(material, "ES384", { extractable: true }));
  if (publicJwk.x !== privateJwk.x || publicJwk.y !== privateJwk.y)
    throw new ConfigError(
      "TOKEN_PRIVATE_KEY",
      "does not match the public key IVS has under TOKEN_KEY_ARN: IVS would refuse every token (run `npm run keys` to make a pair)",
    );
}
