// Secrets are not in wrangler.toml, so `wrangler types` cannot see them; they are optional
// here because config.ts checks them at run time and names any that is missing.
declare namespace Cloudflare {
  interface Env {
    AWS_ACCESS_KEY_ID?: string;
    AWS_SECRET_ACCESS_KEY?: string;
    AWS_SESSION_TOKEN?: string;
    ADMIN_KEY?: string;
    VIEWER_KEY?: string;
    TOKEN_PRIVATE_KEY?: string;
    TOKEN_KEY_ARN?: string;
    IVS_EVENTS_KEY?: string;
  }
}
