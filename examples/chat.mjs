// @ts-check
/**
 * resolve → describePlan → a chat session with two turns.
 *
 *   npm run build
 *   node examples/chat.mjs [model-reference] [models-dir]
 *
 * The model defaults to the tiny random-weight test model (its replies are gibberish); pass a built-in
 * alias, a Hugging Face repo id or a local model directory for real text.
 */
import { RuntimeClient } from "../dist/client.js";

const modelReference = process.argv[2] ?? "./test/fixtures/models/tiny-llama";
const modelsDir = process.argv[3] ?? "models";
const client = new RuntimeClient({
  onEvent: (event) => {
    if (event.type === "load-done" && !event.cached) console.log(`[loaded in ${event.ms.toFixed(0)} ms]`);
  },
});

try {
  // 1. What is this model? (No weights are loaded.)
  const model = await client.resolve(modelReference, { modelsDir });
  console.log(
    `${model.name}: ${model.architecture}, ${model.parameterCount?.toLocaleString()} parameters (${model.dtype})`,
  );
  if (!model.materialized) {
    console.log(`Not downloaded yet: ollm models download ${model.reference}`);
    process.exit(1);
  }

  // 2. How would it run here?
  const runtimeConfig = { modelReference, modelsDir, contextTokens: 512 };
  const { plan } = await client.describePlan(runtimeConfig);
  console.log(
    `plan: ${plan.backend}/${plan.device}, KV ${plan.kvCache.applied}, peak ~${(plan.memory.predictedPeak.host.total / 2 ** 20).toFixed(1)} MiB`,
  );
  for (const r of plan.reasons) console.log(`  ${r.subject}: ${r.decision} (${r.reason})`);

  // 3. Chat: two turns, the second streamed.
  const session = client.session({ runtimeConfig, generationConfig: { maxNewTokens: 24 }, name: "example" });
  const first = await session.prompt("Give me one word for the sea.");
  console.log(`\nassistant: ${first.text}`);
  process.stdout.write("assistant: ");
  const stream = session.stream("And one for the sky?");
  for await (const delta of stream) process.stdout.write(delta.text);
  const second = await stream.response;
  console.log(
    `\n[${second.usage.completionTokens} tokens, ${second.usage.cachedPromptTokens} prompt tokens reused, finish: ${second.finishReason}]`,
  );
  console.log(`history: ${session.messages.length} messages`);
} finally {
  await client.close();
}
