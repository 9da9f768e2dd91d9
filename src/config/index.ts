/** Configuration schemas (zod): the single source of truth for config types and their JSON Schemas. */
export * from "./generation-config.js";
export * from "./memory.js";
export * from "./runtime-config.js";
export * from "./validation.js";
