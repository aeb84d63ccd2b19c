import { existsSync, readFileSync, writeFileSync } from "node:fs";

/**
 * `.dev.vars`, the file wrangler reads local secrets from: KEY=value lines.
 * Updates keep every other line (comments, the user's own settings) as it was.
 */

export function readDevVars(path: string): Map<string, string> {
  const vars = new Map<string, string>();
  if (!existsSync(path)) return vars;
  for (const line of readFileSync(path, "utf8").split(/\r?\n/)) {
    const match = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (match) vars.set(match[1]!, unquote(match[2]!));
  }
  return vars;
}

export function updateDevVars(path: string, updates: Record<string, string>): void {
  const lines = existsSync(path) ? readFileSync(path, "utf8").replace(/\n$/, "").split(/\r?\n/) : [header];
  const pending = new Map(Object.entries(updates));
  const updated = lines.map((line) => {
    const key = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=/.exec(line)?.[1];
    if (key === undefined || !pending.has(key)) return line;
    const value = pending.get(key)!;
    pending.delete(key);
    return `${key}=${quote(value)}`;
  });
  for (const [key, value] of pending) updated.push(`${key}=${quote(value)}`);
  writeFileSync(path, `${updated.join("\n")}\n`, { mode: 0o600 });
}

const header = "# Local secrets for `npm run dev` (wrangler reads this file). Never commit it.";

const quote = (value: string) => (/[\s#"']/.test(value) ? JSON.stringify(value) : value);
const unquote = (value: string) =>
  value.startsWith('"') && value.endsWith('"') ? (JSON.parse(value) as string) : value;
