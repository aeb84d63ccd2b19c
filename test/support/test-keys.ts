/** The admin key the Worker tests use (a test value, never a real one). */
export const TEST_ADMIN_KEY = "test-admin-key-0123456789abcdef";
