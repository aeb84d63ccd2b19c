import { createRoute, z } from "@hono/zod-openapi";
import { unwrap } from "../errors.ts";
import { requireAdmin } from "./auth.ts";
import { adminSecurity, failures, ok, router } from "./router.ts";

export const broadcast = router();

broadcast.openapi(
  createRoute({
    method: "post",
    path: "/broadcast/end",
    tags: ["broadcast"],
    summary: "Ends the broadcast: viewers see 'ended' and every stage Fanout created is deleted",
    security: adminSecurity,
    middleware: [requireAdmin] as const,
    responses: {
      ...ok(
        z.object({
          deleted: z.array(z.string()),
          /** Stages IVS has not confirmed deleted yet: retried until it does; calling end again resumes them. */
          pending: z.array(z.string()),
        }),
        "ended (idempotent: calling it again resumes the deletions that are left)",
      ),
      ...failures(401, 502, 503),
    },
  }),
  async (c) =>
    c.json({ success: true as const, data: unwrap(await c.env.BROADCAST.getByName(c.var.broadcastId).end()) }, 200),
);
