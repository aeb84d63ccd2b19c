import { encode } from "uqr";

/** A share link as a QR code: one SVG path, one unit square per dark module, in a `size`×`size` box. */
export function qrCode(text: string): { size: number; path: string } {
  const qr = encode(text, { border: 1 });
  return {
    size: qr.size,
    path: qr.data.flatMap((row, y) => row.map((dark, x) => (dark ? `M${x} ${y}h1v1h-1z` : ""))).join(""),
  };
}

/** The `<iframe>` that embeds a broadcast's player in another site. */
export function embedCode(origin: string, broadcastId: string): string {
  return `<iframe src="${origin}/embed/${broadcastId}" allow="autoplay; fullscreen" style="aspect-ratio:16/9;width:100%;border:0"></iframe>`;
}
