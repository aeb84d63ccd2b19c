/**
 * The admin key, kept for this tab only (sessionStorage): the studio and the
 * dashboard of one tab share it, and it is gone when the tab closes. It only
 * ever travels in the x-api-key header.
 */
const KEY = "fanout.adminKey";

export const adminKey = {
  get: (): string | undefined => sessionStorage.getItem(KEY) ?? undefined,
  set: (value: string) => sessionStorage.setItem(KEY, value),
  clear: () => sessionStorage.removeItem(KEY),
};

/** Who this tab is to the API: a stable id per tab, so two tabs are two viewers. */
export function tabUserId(prefix: string): string {
  const name = `fanout.${prefix}Id`;
  let id = sessionStorage.getItem(name);
  if (!id) {
    id = `${prefix}-${crypto.randomUUID().slice(0, 8)}`;
    sessionStorage.setItem(name, id);
  }
  return id;
}
