// The example viewer (see index.html). Media: on Amazon IVS the official Web Broadcast SDK from
// AWS's CDN; against `npm run dev`'s emulator, its local media protocol (WebRTC between tabs),
// which stands in for IVS on a laptop. Everything else is Fanout's HTTP API.

const params = new URLSearchParams(location.search);
const FANOUT = (params.get("fanout") ?? "").replace(/\/+$/, "");
const BROADCAST = params.get("broadcast") ?? "main";
const USER = params.get("user") ?? `guest-${crypto.randomUUID().slice(0, 8)}`;
const api = (path) => `${FANOUT}/api/broadcasts/${encodeURIComponent(BROADCAST)}${path}`;
const IVS_SDK = "https://web-broadcast.live-video.net/1.x/amazon-ivs-web-broadcast.js";

const video = document.getElementById("video");
const statusLine = document.getElementById("status");
const viewersLine = document.getElementById("viewers");
const status = (code, text) => {
  statusLine.dataset.status = code;
  statusLine.textContent = text;
};

/** Fanout's envelope: the data, or an Error with the API's code and message. */
async function call(path, body) {
  const response = await fetch(api(path), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const envelope = await response.json();
  if (!envelope.success) {
    const error = new Error(envelope.error.message);
    error.code = envelope.error.code;
    error.retryAfter = Number(response.headers.get("Retry-After") ?? 5);
    throw error;
  }
  return envelope.data;
}

const claims = (token) => JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));

let seat; // { token, participantId, stageArn, heartbeatIntervalSeconds }
let media; // { close() }
let timer;

async function watch() {
  for (;;) {
    try {
      await sit(await call("/token/viewer", { userId: USER }));
      return;
    } catch (error) {
      status("waiting", error.code === "NOT_FOUND" ? "The broadcast has not started yet." : error.message);
      await new Promise((resolve) => setTimeout(resolve, (error.retryAfter || 5) * 1000));
    }
  }
}

/** Takes a seat: plays the stage the token names, and heartbeats for it. */
async function sit(grant) {
  media?.close();
  seat = grant;
  viewersLine.textContent = String(grant.currentViewers ?? 0);
  status("connecting", "Connecting…");
  const eventsUrl = claims(grant.token).events_url ?? "";
  media = /live-video\.net/.test(eventsUrl) ? await playWithIvsSdk(grant.token) : playLocally(grant.token, eventsUrl);
  clearTimeout(timer);
  timer = setTimeout(heartbeat, grant.heartbeatIntervalSeconds * 1000);
}

async function heartbeat() {
  const { token, participantId, stageArn } = seat;
  try {
    const presence = await call("/viewer/heartbeat", { userId: USER, participantId, stageArn, token });
    viewersLine.textContent = String(presence.viewers);
    // The stage drains or is gone: a seat elsewhere comes with the answer.
    if (presence.join) return sit(presence.join);
    if (presence.migrateTo) return sit(await call("/token/viewer", { userId: USER, stageArn: presence.migrateTo }));
    timer = setTimeout(heartbeat, presence.nextHeartbeatSeconds * 1000);
  } catch (error) {
    // Ended, or the network: try again from the start after a pause.
    status("reconnecting", error.message);
    timer = setTimeout(() => void watch(), (error.retryAfter || 5) * 1000);
  }
}

addEventListener("pagehide", () => {
  if (!seat) return;
  const { token, participantId, stageArn } = seat;
  // keepalive: the request outlives the page.
  void fetch(api("/viewer/leave"), {
    method: "POST",
    keepalive: true,
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ userId: USER, participantId, stageArn, token }),
  });
});

// ── media on Amazon IVS: the Web Broadcast SDK ──────────────────────────────

async function playWithIvsSdk(token) {
  if (!window.IVSBroadcastClient) {
    await new Promise((resolve, reject) => {
      const script = Object.assign(document.createElement("script"), {
        src: IVS_SDK,
        onload: resolve,
        onerror: reject,
      });
      document.head.append(script);
    });
  }
  const { Stage, SubscribeType, StageEvents } = window.IVSBroadcastClient;
  const stage = new Stage(token, {
    stageStreamsToPublish: () => [],
    shouldPublishParticipant: () => false,
    shouldSubscribeToParticipant: () => SubscribeType.AUDIO_VIDEO,
  });
  stage.on(StageEvents.STAGE_PARTICIPANT_STREAMS_ADDED, (_participant, streams) => {
    const stream = video.srcObject instanceof MediaStream ? video.srcObject : new MediaStream();
    for (const s of streams) stream.addTrack(s.mediaStreamTrack);
    video.srcObject = stream;
    status("live", "Live");
  });
  await stage.join();
  return { close: () => stage.leave() };
}

// ── media against the local emulator: its hub relays WebRTC signalling ──────

function playLocally(token, eventsUrl) {
  const ws = new WebSocket(eventsUrl);
  const peers = new Map();
  const send = (message) => ws.readyState === WebSocket.OPEN && ws.send(JSON.stringify(message));
  const subscribe = async (participantId) => {
    if (peers.has(participantId)) return;
    const pc = new RTCPeerConnection();
    peers.set(participantId, pc);
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addTransceiver("audio", { direction: "recvonly" });
    pc.ontrack = (event) => {
      const stream = video.srcObject instanceof MediaStream ? video.srcObject : new MediaStream();
      stream.addTrack(event.track);
      video.srcObject = stream;
      status("live", "Live");
    };
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((resolve) => {
      if (pc.iceGatheringState === "complete") return resolve();
      pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && resolve();
      setTimeout(resolve, 3000);
    });
    send({ type: "signal", to: participantId, data: { kind: "offer", sdp: pc.localDescription.sdp } });
  };
  const drop = (participantId) => {
    peers.get(participantId)?.close();
    peers.delete(participantId);
  };
  ws.onopen = () => send({ type: "join", token });
  ws.onmessage = async (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "joined")
      for (const p of message.participants) if (p.published) void subscribe(p.participantId);
    if (message.type === "participant_joined" && message.participant.published)
      void subscribe(message.participant.participantId);
    if (message.type === "participant_published") {
      if (message.published) void subscribe(message.participantId);
      else drop(message.participantId);
    }
    if (message.type === "participant_left") drop(message.participantId);
    if (message.type === "signal" && message.data?.kind === "answer")
      await peers.get(message.from)?.setRemoteDescription({ type: "answer", sdp: message.data.sdp });
  };
  return {
    close() {
      for (const pc of peers.values()) pc.close();
      ws.close();
    },
  };
}

if (!FANOUT) status("error", "Add ?fanout=<your Fanout URL> to this page's address.");
else void watch();
