/** What the studio says when the browser refuses or fails to open a camera or microphone. */
export function describeMediaError(error: unknown): string {
  const name = (error as DOMException).name;
  if (name === "NotAllowedError" || name === "SecurityError")
    return "Camera and microphone access was denied. Allow them for this site in the browser's settings, then reload.";
  if (name === "NotFoundError" || name === "OverconstrainedError")
    return "No camera or microphone was found. Connect one and pick it below.";
  if (name === "NotReadableError") return "The camera or microphone is in use by another application.";
  return `The camera or microphone could not be opened (${(error as Error).message}).`;
}
