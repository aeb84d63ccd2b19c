/** The admin key the Worker tests use (a test value, never a real one). */
export const TEST_ADMIN_KEY = "test-admin-key-0123456789abcdef";

/** The key the Worker tests' EventBridge presents on POST /api/ivs/events (IVS_EVENTS_KEY). */
export const TEST_EVENTS_KEY = "test-events-key-0123456789abcdef";
