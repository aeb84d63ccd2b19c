import { generateKeyPairSync } from "node:crypto";
import { SignJWT, importPKCS8, importSPKI, jwtVerify } from "jose";
import { describe, expect, it } from "vitest";
import { toPkcs8Pem } from "../../worker/tokens/private-key.ts";

/** The token key in the forms operators have it: what `npm run keys` writes, and what AWS's guide makes with openssl. */

const pair = () => generateKeyPairSync("ec", { namedCurve: "secp384r1" });
// `openssl ecparam -name secp384r1 -genkey` writes the curve first: the DER of its OID, 1.3.132.0.34.
const EC_PARAMETERS = "-----BEGIN EC PARAMETERS-----\nBgUrgQQAIg==\n-----END EC PARAMETERS-----\n";

async function signsFor(privatePem: string, publicPem: string): Promise<boolean> {
  const key = await importPKCS8(toPkcs8Pem(privatePem), "ES384");
  const jwt = await new SignJWT({ ok: true }).setProtectedHeader({ alg: "ES384" }).sign(key);
  const { payload } = await jwtVerify(jwt, await importSPKI(publicPem, "ES384"));
  return payload.ok === true;
}

describe("the token private key", () => {
  it("accepts a SEC1 key (BEGIN EC PRIVATE KEY), as openssl ecparam -genkey writes it, EC PARAMETERS block included", async () => {
    const { privateKey, publicKey } = pair();
    const sec1 = privateKey.export({ type: "sec1", format: "pem" }) as string;
    const spki = publicKey.export({ type: "spki", format: "pem" }) as string;
    expect(await signsFor(sec1, spki)).toBe(true);
    expect(await signsFor(EC_PARAMETERS + sec1, spki)).toBe(true);
    // As a one-line secret with literal \n escapes.
    expect(await signsFor((EC_PARAMETERS + sec1).replace(/\n/g, "\\n"), spki)).toBe(true);
  });

  it("accepts a PKCS#8 key as a PEM or as its base64 body on one line (what npm run keys writes)", async () => {
    const { privateKey, publicKey } = pair();
    const pkcs8 = privateKey.export({ type: "pkcs8", format: "pem" }) as string;
    const spki = publicKey.export({ type: "spki", format: "pem" }) as string;
    expect(await signsFor(pkcs8, spki)).toBe(true);
    expect(await signsFor(pkcs8.replace(/-----(BEGIN|END) PRIVATE KEY-----|\s+/g, ""), spki)).toBe(true);
  });
});
