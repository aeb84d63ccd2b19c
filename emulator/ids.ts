import { randomInt } from "node:crypto";

const ALPHANUMERIC = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/** A random id of letters and digits, the shape IVS uses for resource and participant ids. */
export function randomId(length = 12): string {
  let id = "";
  for (let i = 0; i < length; i++) id += ALPHANUMERIC[randomInt(ALPHANUMERIC.length)];
  return id;
}

/** Stage session ids are `st-` and 13 characters: 16 in all, as the model's StageSessionId. */
export const sessionId = () => `st-${randomId(13)}`;
