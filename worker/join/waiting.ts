/**
 * How a join waits when every stage is full (join.ts); the scale simulation (bench/scale.ts) waits
 * the same way. Plain values: nothing here needs the Workers runtime.
 */

/** A join waits this long for a stage being created before it answers STAGE_FULL. */
export const WAIT_FOR_CAPACITY_MS = 8_000;
/** While joins wait for a stage, the table is re-read this often per isolate (not per join). */
export const WAITING_REFRESH_MS = 300;
/** One request for capacity per broadcast per isolate this often, however many joins find the pool full. */
export const CAPACITY_REQUEST_MS = 500;
