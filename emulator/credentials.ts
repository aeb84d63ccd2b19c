import type { Credentials } from "./sigv4.ts";

/**
 * The credentials `npm run dev` and the tests sign with; the emulator accepts
 * them by default. Local only: AWS knows no such key.
 */
export const LOCAL_CREDENTIALS: Credentials = {
  accessKeyId: "AKIAFANOUTLOCALDEV01",
  secretAccessKey: "fanout-local-emulator-secret-key-not-for-aws",
};
