import { exportPKCS8, exportSPKI, generateKeyPair } from "jose";
import { IvsClient } from "../worker/ivs/client.ts";

/**
 * The key pair behind self-signed participant tokens (docs/design.md, "Tokens"): a P-384 pair
 * whose public half is imported into IVS (ImportPublicKey), so IVS can verify
 * tokens the Worker signs with the private half.
 */
export interface TokenKey {
  /** PKCS#8 body, base64 on one line: fits `.dev.vars` and `wrangler secret put`. */
  privateKey: string;
  keyArn: string;
}

export async function createTokenKey(ivs: IvsClient, name: string): Promise<TokenKey> {
  const { privateKey, publicKey } = await generateKeyPair("ES384", { extractable: true });
  const { publicKey: imported } = await ivs.importPublicKey({
    publicKeyMaterial: await exportSPKI(publicKey),
    name,
    tags: { "fanout:creator": "fanout-keys" },
  });
  if (!imported.arn) throw new Error("ImportPublicKey answered without an ARN");
  const pem = await exportPKCS8(privateKey);
  return { privateKey: pem.replace(/-----(BEGIN|END) PRIVATE KEY-----|\s+/g, ""), keyArn: imported.arn };
}
