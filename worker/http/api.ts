import { OpenAPIHono } from "@hono/zod-openapi";
import { createMiddleware } from "hono/factory";
import { ApiError } from "../errors.ts";
import { loadConfig } from "../config.ts";
import { broadcast } from "./broadcast.ts";
import { broadcaster } from "./broadcaster.ts";
import { BROADCAST_ID_RULE, DEFAULT_BROADCAST, isBroadcastId } from "../../protocol/ids.ts";
import type { AppEnv } from "./context.ts";
import { deployment } from "./deployment.ts";
import { ivsEvents } from "./ivs-events.ts";
import { router } from "./router.ts";
import { stages } from "./stages.ts";
import { stats } from "./stats.ts";
import { tokens } from "./tokens.ts";
import { viewer } from "./viewer.ts";

/**
 * The API routes of one broadcast. Mounted twice by the Worker: at `/api`
 * (the unprefixed paths integrators know, broadcast `main`) and at
 * `/api/broadcasts/:broadcastId`.
 */
export function apiRoutes() {
  const api = router();
  api.use(
    createMiddleware<AppEnv>(async (c, next) => {
      const id = c.req.param("broadcastId") ?? DEFAULT_BROADCAST;
      if (!isBroadcastId(id)) throw new ApiError("VALIDATION_ERROR", 400, BROADCAST_ID_RULE);
      c.set("broadcastId", id);
      c.set("config", loadConfig(c.env));
      await next();
    }),
  );
  for (const routes of [tokens, broadcaster, viewer, stats, stages, broadcast]) api.route("/", routes);
  return api;
}

/**
 * The OpenAPI 3.1 document, generated from the route schemas: served at
 * /api/openapi.json with every route at `/api` (`base`). The pages' typed
 * client (scripts/api-types.ts) is generated from two parts with `base` "/":
 * the broadcast's routes (`part: "broadcast"`, which the client puts behind
 * `/api/broadcasts/<id>`) and the deployment's (`part: "deployment"`, behind `/api`).
 */
export function openApiDocument(origin: string, base = "/api", part: "all" | "broadcast" | "deployment" = "all") {
  const docs = new OpenAPIHono();
  if (part !== "deployment") docs.route(base, apiRoutes());
  if (part !== "broadcast") docs.route(base, deployment).route(base, ivsEvents);
  docs.openAPIRegistry.registerComponent("securitySchemes", "apiKey", {
    type: "apiKey",
    in: "header",
    name: "x-api-key",
  });
  return docs.getOpenAPI31Document({
    openapi: "3.1.0",
    info: {
      title: "Fanout API",
      version: "1",
      description:
        "One broadcaster to an audience of any size on Amazon IVS Real-Time. Every route below acts on the default broadcast `main`; " +
        "the same routes exist under `/api/broadcasts/{broadcastId}/` for any other broadcast. Every answer is " +
        '`{"success": true, "data": ...}` or `{"success": false, "error": {"code", "message", "details"?}}`.',
    },
    servers: [{ url: origin }],
  });
}
