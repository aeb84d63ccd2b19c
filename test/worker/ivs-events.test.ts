import { SELF, env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { TEST_EVENTS_KEY } from "../support/test-keys.ts";
import {
  api,
  call,
  connectPublisher,
  data,
  fetchWith,
  live,
  newBroadcastId,
  ORIGIN,
  tick,
  waitFor,
} from "./support.ts";

/**
 * The publisher's state from IVS itself: EventBridge's "IVS Stage Update" events (best effort:
 * late, twice, out of order, times in whole seconds), and without them a poll of IVS.
 */

type Stats = { isPublisherLive: boolean; publisher: { state: string } | null };
const stats = async (b: string) => data(await call<Stats>(api(b, "/stats")));

let seq = 0;
function stageUpdate(stageArn: string, participantId: string, eventName: string, time: string, id = `ev-${++seq}`) {
  return {
    version: "0",
    id,
    "detail-type": "IVS Stage Update",
    source: "aws.ivs",
    account: "123456789012",
    time,
    region: "us-east-1",
    resources: [stageArn],
    detail: { session_id: "st-abcdefghijklm", event_name: eventName, user_id: "host", participant_id: participantId },
  };
}

const deliver = async (event: object, key: string | null = TEST_EVENTS_KEY) => {
  const response = await SELF.fetch(`${ORIGIN}/api/ivs/events`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(key !== null && { "x-api-key": key }) },
    body: JSON.stringify(event),
  });
  return { status: response.status, body: (await response.json()) as { success: boolean; data?: { outcome: string } } };
};

const at = (seconds: number) => new Date(Date.UTC(2026, 10, 22, 12, 0, seconds)).toISOString().replace(".000Z", "Z");

describe("publish state from IVS's EventBridge events", () => {
  it("events delivered out of order and twice give the right publish state", async () => {
    const b = newBroadcastId();
    const grant = await live(b);
    const published = stageUpdate(grant.stageArn, grant.participantId, "Participant Published", at(1));
    expect((await deliver(published)).body.data?.outcome).toBe("applied");
    expect((await stats(b)).isPublisherLive).toBe(true);
    // The same event again (EventBridge delivers at least once): nothing changes.
    expect((await deliver(published)).body.data?.outcome).toBe("duplicate");

    // Unpublished at 0:03 arrives before Published at 0:02: the later one stands.
    const unpublished = stageUpdate(grant.stageArn, grant.participantId, "Participant Unpublished", at(3));
    const republished = stageUpdate(grant.stageArn, grant.participantId, "Participant Published", at(2));
    expect((await deliver(unpublished)).body.data?.outcome).toBe("applied");
    expect((await deliver(republished)).body.data?.outcome).toBe("stale");
    const s = await stats(b);
    expect(s.isPublisherLive).toBe(false);
    expect(s.publisher?.state).toBe("stopped");
  });

  it("two events of one second that disagree are settled by asking IVS", async () => {
    const b = newBroadcastId();
    const grant = await live(b);
    const publisher = await connectPublisher(grant.token);
    await publisher.publish();
    // IVS has it publishing. EventBridge says unpublished, then published, in the same second.
    expect(
      (await deliver(stageUpdate(grant.stageArn, grant.participantId, "Participant Unpublished", at(10)))).body.data
        ?.outcome,
    ).toBe("applied");
    expect(
      (await deliver(stageUpdate(grant.stageArn, grant.participantId, "Participant Published", at(10)))).body.data
        ?.outcome,
    ).toBe("ambiguous");
    await waitFor(async () => {
      await tick(b);
      expect((await stats(b)).isPublisherLive).toBe(true);
    });
    publisher.close();
  });

  it("events about another participant or another stage change nothing", async () => {
    const b = newBroadcastId();
    const grant = await live(b);
    const other = await deliver(stageUpdate(grant.stageArn, "someoneElse", "Participant Published", at(1)));
    expect(other.body.data?.outcome).toBe("not_the_publisher");
    const elsewhere = await deliver(
      stageUpdate(
        "arn:aws:ivs:us-east-1:123456789012:stage/notOursAtAll",
        grant.participantId,
        "Participant Published",
        at(1),
      ),
    );
    expect(elsewhere.body.data?.outcome).toBe("ignored");
    const replication = await deliver(
      stageUpdate(grant.stageArn, grant.participantId, "Participant Replication Started", at(1)),
    );
    expect(replication.body.data?.outcome).toBe("ignored");
    expect((await stats(b)).isPublisherLive).toBe(false);
  });

  it("a missing or wrong key is refused; a malformed event is a 400; without IVS_EVENTS_KEY the route is closed", async () => {
    const b = newBroadcastId();
    const grant = await live(b);
    const event = stageUpdate(grant.stageArn, grant.participantId, "Participant Published", at(1));
    expect((await deliver(event, null)).status).toBe(401);
    expect((await deliver(event, "not-the-events-key-at-all")).status).toBe(401);
    expect((await stats(b)).isPublisherLive).toBe(false);
    expect((await deliver({ ...event, time: "yesterday" })).status).toBe(400);
    const closed = await fetchWith({ IVS_EVENTS_KEY: "" }, "/api/ivs/events", {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": TEST_EVENTS_KEY },
      body: JSON.stringify(event),
    });
    expect(closed.status).toBe(404);
    // Secrets never in an answer.
    expect(JSON.stringify(await closed.json())).not.toContain(TEST_EVENTS_KEY);
  });
});

describe("publish state from IVS without EventBridge", () => {
  it("a broadcaster that never reports is seen live by the poll within its interval, stopped likewise, and the idle end ends it", async () => {
    const b = newBroadcastId();
    const grant = await live(b);
    const publisher = await connectPublisher(grant.token);
    await publisher.publish();
    // No report, no event: the live tick asks IVS (at most every 5 s).
    await waitFor(async () => {
      await tick(b);
      expect((await stats(b)).isPublisherLive).toBe(true);
    }, 15_000);
    publisher.close();
    await waitFor(async () => {
      await tick(b);
      expect((await stats(b)).isPublisherLive).toBe(false);
    }, 15_000);
    expect((await stats(b)).publisher?.state).toBe("stopped");
    // And the idle end works for it: stopped for longer than PUBLISHER_IDLE_END_MINUTES (10), it ends.
    await runInDurableObject(env.BROADCAST.getByName(b), (_o, state) => {
      state.storage.sql.exec("UPDATE publisher SET since = ?", Date.now() - 11 * 60_000);
    });
    await waitFor(async () => {
      await tick(b);
      expect(data(await call<{ status: string }>(api(b, "/stats"))).status).toBe("ended");
    }, 15_000);
  });

  it("while events flow the poll slows down to back them up only", async () => {
    const b = newBroadcastId();
    const grant = await live(b);
    await deliver(stageUpdate(grant.stageArn, grant.participantId, "Participant Published", new Date().toISOString()));
    expect((await stats(b)).isPublisherLive).toBe(true);
    // IVS has no such publish (the event was made up for this test): a poll would say stopped.
    await runInDurableObject(env.BROADCAST.getByName(b), (_o, state) => {
      state.storage.sql.exec("UPDATE publisher SET checked_at = ?", Date.now() - 10_000);
    });
    await tick(b);
    expect((await stats(b)).isPublisherLive).toBe(true);
  });
});
