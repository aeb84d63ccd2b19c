// A static SPA: the Worker serves index.html for every page path and the client renders it.
export const ssr = false;
export const prerender = false;
