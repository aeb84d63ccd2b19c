/**
 * How a join waits when every stage is full (join.ts); the scale simulation (bench/scale.ts) waits
 * the same way. Plain values: nothing here needs the Workers runtime.
 */

/** A join waits this long for a stage being created before it answers STAGE_FULL. */
export const WAIT_FOR_CAPACITY_MS = 8_000;
/**
 * While joins wait for a stage, each looks at its isolate's copy of the table this often. The copy
 * is not read any sooner for them (once a second per location, routing-cache.ts): a crowd waiting in
 * two hundred locations would otherwise be hundreds of reads a second on the Broadcast object just
 * when it is creating stages.
 */
export const WAITING_POLL_MS = 300;
/**
 * One request for capacity per broadcast per location this often, however many joins find the pool
 * full; and only from a join that has waited `CAPACITY_ASK_AFTER_MS`. A backstop: the shards' reports
 * tell the broadcast a stage filled, and a table read since would show a stage on its way.
 */
export const CAPACITY_REQUEST_MS = 2_000;
export const CAPACITY_ASK_AFTER_MS = 1_000;
