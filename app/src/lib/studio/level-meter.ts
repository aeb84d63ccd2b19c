/**
 * The microphone's level, 0 to 1, once an animation frame: the RMS of the
 * signal, scaled so that speech fills most of the meter. Returns a stop function.
 */
export function meterLevel(stream: MediaStream, onLevel: (level: number) => void): () => void {
  if (!stream.getAudioTracks().length) return () => {};
  const context = new AudioContext();
  const analyser = context.createAnalyser();
  analyser.fftSize = 512;
  context.createMediaStreamSource(stream).connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  let frame = 0;
  const tick = () => {
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const s of samples) sum += s * s;
    onLevel(Math.min(1, Math.sqrt(sum / samples.length) * 4));
    frame = requestAnimationFrame(tick);
  };
  tick();
  return () => {
    cancelAnimationFrame(frame);
    void context.close();
  };
}
