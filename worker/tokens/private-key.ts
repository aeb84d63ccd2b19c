/**
 * The token key as operators have it: PKCS#8 (`BEGIN PRIVATE KEY`, what `npm run keys` writes)
 * or SEC1 (`BEGIN EC PRIVATE KEY`, what AWS's guide makes with `openssl ecparam -genkey`, often
 * after an `EC PARAMETERS` block), as a PEM or its base64 body, literal `\n` escapes tolerated.
 * Web Crypto imports PKCS#8 only, so a SEC1 key is wrapped in a PKCS#8 envelope here: the
 * ECPrivateKey goes, unchanged, into a PrivateKeyInfo naming id-ecPublicKey on secp384r1.
 */

/** The PKCS#8 PEM of a configured private key, whichever of the accepted forms it came in. */
export function toPkcs8Pem(privateKey: string): string {
  const text = privateKey.replace(/\\n/g, "\n");
  const sec1 = /-----BEGIN EC PRIVATE KEY-----([\s\S]*?)-----END EC PRIVATE KEY-----/.exec(text);
  const der = sec1 ? wrapSec1(base64Decode(sec1[1]!)) : undefined;
  const body = der
    ? base64Encode(der)
    : text
        .replace(/-----BEGIN EC PARAMETERS-----[\s\S]*?-----END EC PARAMETERS-----/g, "")
        .replace(/-----(BEGIN|END) PRIVATE KEY-----/g, "")
        .replace(/\s+/g, "");
  const lines = body.match(/.{1,64}/g) ?? [];
  return `-----BEGIN PRIVATE KEY-----\n${lines.join("\n")}\n-----END PRIVATE KEY-----\n`;
}

// OIDs, DER-encoded: id-ecPublicKey (1.2.840.10045.2.1) and secp384r1 (1.3.132.0.34).
const EC_PUBLIC_KEY = [0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const SECP384R1 = [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

function wrapSec1(ecPrivateKey: Uint8Array): Uint8Array {
  const version = [0x02, 0x01, 0x00];
  const algorithm = der(0x30, [...EC_PUBLIC_KEY, ...SECP384R1]);
  const key = der(0x04, [...ecPrivateKey]);
  return new Uint8Array(der(0x30, [...version, ...algorithm, ...key]));
}

/** One DER element: tag, definite length (short or long form), contents. */
function der(tag: number, contents: number[]): number[] {
  const n = contents.length;
  const length: number[] = [];
  if (n < 0x80) length.push(n);
  else {
    const bytes: number[] = [];
    for (let v = n; v > 0; v >>= 8) bytes.unshift(v & 0xff);
    length.push(0x80 | bytes.length, ...bytes);
  }
  return [tag, ...length, ...contents];
}

function base64Decode(text: string): Uint8Array {
  const binary = atob(text.replace(/\s+/g, ""));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

function base64Encode(bytes: Uint8Array): string {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}
