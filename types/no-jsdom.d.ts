// Stands in for `jsdom` in the Worker type check (see worker/tsconfig.json).
export {};
