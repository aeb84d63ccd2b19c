import { encode } from "uqr";

/** A share link as a QR code: one SVG path, one unit square per dark module, in a `size`×`size` box. */
export function qrCode(text: string): { size: number; path: string } {
  const qr = encode(text, { border: 1 });
  return {
    size: qr.size,
    path: qr.data.flatMap((row, y) => row.map((dark, x) => (dark ? `M${x} ${y}h1v1h-1z` : ""))).join(""),
  };
}

/**
 * A broadcast's share link. On a deployment with `VIEWER_ACCESS=key` it carries the viewer key
 * (never the admin key) in its fragment: browsers never send a fragment to a server, so the key
 * stays out of requests, logs and Referer headers; the player reads it and sends it in x-api-key.
 */
export function shareLink(origin: string, broadcastId: string, viewerKey?: string, page: "watch" | "embed" = "watch") {
  const fragment = viewerKey ? `#${new URLSearchParams({ key: viewerKey })}` : "";
  return `${origin}/${page}/${encodeURIComponent(broadcastId)}${fragment}`;
}

/** The viewer key a share link carried in its fragment (`location.hash`), if any. */
export function viewerKeyOf(hash: string): string | undefined {
  return new URLSearchParams(hash.replace(/^#/, "")).get("key") || undefined;
}

/** The `<iframe>` that embeds a broadcast's player in another site. */
export function embedCode(origin: string, broadcastId: string, viewerKey?: string): string {
  const src = shareLink(origin, broadcastId, viewerKey, "embed").replace(/&/g, "&amp;").replace(/"/g, "&quot;");
  return `<iframe src="${src}" allow="autoplay; fullscreen" style="aspect-ratio:16/9;width:100%;border:0"></iframe>`;
}
