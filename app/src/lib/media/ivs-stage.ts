import type { LocalStageStream, StageParticipantInfo, StageStream } from "amazon-ivs-web-broadcast";
import { AUDIO, VIDEO } from "./encoding.ts";
import { Emitter, leftReason, type MediaStage, type StageParticipant, type StageStrategy } from "./stage.ts";

/** The IVS Web Broadcast SDK behind the pages' `MediaStage`. Loaded on demand (it needs `window`). */
export async function ivsStage(token: string, strategy: StageStrategy): Promise<MediaStage> {
  const sdk = await import("amazon-ivs-web-broadcast");
  const { Stage, StageEvents, SubscribeType } = sdk;
  const published = new Map<MediaStreamTrack, LocalStageStream>();
  const participant = (p: StageParticipantInfo): StageParticipant => ({
    id: p.id,
    userId: p.userId,
    isLocal: p.isLocal,
    isPublishing: p.isPublishing,
  });
  const tracks = (streams: StageStream[]) => streams.map((s) => s.mediaStreamTrack);

  const stage = new Stage(token, {
    stageStreamsToPublish: () =>
      strategy.stageStreamsToPublish().map((track) => {
        let stream = published.get(track);
        // Simulcast layers for video (encoding.ts); Opus at a bitrate for voice and music.
        if (!stream)
          published.set(track, (stream = new sdk.LocalStageStream(track, track.kind === "video" ? VIDEO : AUDIO)));
        return stream;
      }),
    shouldPublishParticipant: (p) => strategy.shouldPublishParticipant(participant(p)),
    shouldSubscribeToParticipant: (p) =>
      strategy.shouldSubscribeToParticipant(participant(p)) ? SubscribeType.AUDIO_VIDEO : SubscribeType.NONE,
  });

  const events = new Emitter();
  stage.on(StageEvents.STAGE_CONNECTION_STATE_CHANGED, (state) => events.emit("stageConnectionStateChanged", state));
  stage.on(StageEvents.STAGE_PARTICIPANT_JOINED, (p) => events.emit("stageParticipantJoined", participant(p)));
  stage.on(StageEvents.STAGE_PARTICIPANT_LEFT, (p) => events.emit("stageParticipantLeft", participant(p)));
  stage.on(StageEvents.STAGE_PARTICIPANT_STREAMS_ADDED, (p, streams) =>
    events.emit("stageParticipantStreamsAdded", participant(p), tracks(streams)),
  );
  stage.on(StageEvents.STAGE_PARTICIPANT_STREAMS_REMOVED, (p, streams) =>
    events.emit("stageParticipantStreamsRemoved", participant(p), tracks(streams)),
  );
  stage.on(StageEvents.STAGE_PARTICIPANT_PUBLISH_STATE_CHANGED, (p, state) =>
    events.emit("stageParticipantPublishStateChanged", participant(p), state),
  );
  stage.on(StageEvents.STAGE_LEFT, (reason) => events.emit("stageLeft", leftReason(reason)));

  return {
    transport: "ivs",
    join: () => stage.join(),
    leave: () => stage.leave(),
    refreshStrategy: () => stage.refreshStrategy(),
    exchangeToken: (next) => stage.exchangeToken(next),
    on: (event, listener) => events.on(event, listener),
    off: (event, listener) => events.off(event, listener),
  };
}
