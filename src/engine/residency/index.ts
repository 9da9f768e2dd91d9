/** Weight placement, streaming and the KV strategy selector: what the runtime planner calls. */
export {
  KV_STRATEGIES,
  type KvCacheOptions,
  type KvProfile,
  type KvSelection,
  type KvSelectionInput,
  type KvStrategy,
  predictKvBytes,
  selectKvStrategy,
} from "../kv/strategies.js";
export { ExpertCache, type ExpertCacheStats } from "./expert-cache.js";
export {
  defaultHostBudget,
  type OffloadPolicy,
  offloadLayerIndices,
  type PlacementOrder,
  planResidency,
  type Residency,
  type ResidencyPlan,
  type ResidencyPlanInput,
  V8_GC_SLACK_BYTES,
} from "./policy.js";
export {
  type AppliedPass,
  SPECIALIZATION_PASSES,
  type SpecializationInput,
  type SpecializationPass,
  specializationPasses,
} from "./specialization.js";
export {
  EXPERT_TENSOR,
  type LayeredWeightOptions,
  LayeredWeightStore,
  readOverlap,
  type StreamingStats,
} from "./streaming-store.js";
