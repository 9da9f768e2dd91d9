/** The runtime layer: reference → resolve → discover/materialize → plan → load → execute. */
export * from "./atomic-file.js";
export * from "./backend-choice.js";
export * from "./catalog.js";
export * from "./events.js";
export * from "./executor.js";
export * from "./gpu-memory.js";
export * from "./gpu-probe.js";
export * from "./inspect.js";
export * from "./loader.js";
export * from "./machine.js";
export * from "./materializer.js";
export * from "./plan.js";
export * from "./reference.js";
export * from "./resolved-model.js";
export * from "./resolver.js";
export * from "./tokenizer.js";
