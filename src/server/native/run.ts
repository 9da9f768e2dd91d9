import type { FastifyReply, FastifyRequest } from "fastify";
import type { GeneratedToken } from "../../runtime/executor.js";
import type { RuntimeEvent } from "../../runtime/events.js";
import { audioPart, type ContentPart, imagePart, type Message, textPart } from "../../messages.js";
import type { PromptResponse, PromptStream, StreamSink } from "../../session.js";
import { toApiError } from "../errors.js";
import { Generation, type ServerContext, startGeneration } from "../generation.js";
import { newId } from "../ids.js";
import { Job } from "../jobs.js";
import type { ModelTarget } from "../models.js";
import { logGeneration } from "../openai/chat.js";
import { mediaUrl } from "../openai/convert.js";
import { Channel, sendSse, sseEvent } from "../sse.js";
import type { NativeMessage, NativePart, NativeResponse } from "./schemas.js";

/** Native content parts as the client's (media must be URLs or data: URIs). */
export function nativeParts(input: string | NativePart[], param: string): ContentPart[] {
  if (typeof input === "string") return [textPart(input)];
  return input.map((p, i) => {
    if (p.type === "text") return textPart(p.text);
    if (p.type === "image") return imagePart(mediaUrl(p.image, `${param}[${i}].image`));
    return audioPart(mediaUrl(p.audio, `${param}[${i}].audio`));
  });
}

/** Native messages as the client's. */
export function nativeMessages(messages: NativeMessage[], param: string): Message[] {
  return messages.map((m, i) => ({
    role: m.role,
    content: nativeParts(m.content, `${param}[${i}].content`),
  }));
}

/** A response of the native API. */
export function nativeResponse(
  id: string,
  model: string,
  response: PromptResponse,
  job: Job,
): NativeResponse {
  return {
    id,
    model,
    text: response.text,
    finishReason: response.finishReason,
    usage: response.usage,
    timings: response.timings,
    logprobs: response.logprobs,
    stopped: response.finishReason === "cancelled" ? job.reason : null,
  };
}

function tokenOf(token: GeneratedToken) {
  return {
    id: token.id,
    text: token.text,
    logprob: token.logprob,
    ...(token.topLogprobs ? { topLogprobs: token.topLogprobs } : {}),
  };
}

/** How a native route runs its turn. */
export interface NativeRun {
  target: ModelTarget;
  /** Starts the prompt stream (the sink receives runtime events for progress). */
  start: (signal: AbortSignal, sink: StreamSink | undefined) => PromptStream;
  stream: boolean;
  /** Send each token with its log-probability in delta events. */
  tokens: boolean;
  /** Extra fields of the final answer (sessions add the session). */
  extra?: () => Record<string, unknown>;
  /** Called once the turn is over (success or not). */
  onEnd?: () => void;
}

/**
 * Runs a native prompt: whole (JSON) or streamed as server-sent events `progress` (queue position,
 * load, prefill), `delta`, `done` and `error`. The queue admits or refuses (429) before anything is sent.
 */
export async function runNative(
  ctx: ServerContext,
  request: FastifyRequest,
  reply: FastifyReply,
  run: NativeRun,
): Promise<FastifyReply> {
  const id = newId("prompt_");
  const job = new Job(request, reply, ctx.config.requestTimeoutMs, ctx.shutdown);
  if (!run.stream) {
    let gen: Generation | undefined;
    try {
      gen = await startGeneration(ctx, job, run.target, (signal) => run.start(signal, undefined));
      const response = await gen.collect();
      logGeneration(job, run.target.id, response.usage, response.finishReason);
      return reply.send({ ...nativeResponse(id, run.target.id, response, job), ...run.extra?.() });
    } finally {
      await gen?.cancel();
      job.finish();
      run.onEnd?.();
    }
  }
  let ticket: ReturnType<Job["enqueue"]>;
  try {
    ticket = job.enqueue(ctx.queues.get(run.target.key));
  } catch (error) {
    job.finish();
    run.onEnd?.();
    throw error;
  }
  const channel = new Channel<string>();
  const progress = (event: RuntimeEvent | { type: "queued"; position: number }) => {
    void channel.push(sseEvent(event, "progress"));
  };
  const produce = async () => {
    let gen: Generation | undefined;
    try {
      if (ticket.position > 0) progress({ type: "queued", position: ticket.position });
      await ticket.granted;
      gen = new Generation(run.start(job.signal, { onEvent: progress }), undefined, job);
      for (let d = await gen.next(); d; d = await gen.next()) {
        if (!d.text && !(run.tokens && d.token)) continue;
        await channel.push(
          sseEvent(
            run.tokens && d.token ? { text: d.text, token: tokenOf(d.token) } : { text: d.text },
            "delta",
          ),
        );
      }
      const response = await gen.stream.response;
      logGeneration(job, run.target.id, response.usage, response.finishReason);
      await channel.push(
        sseEvent({ ...nativeResponse(id, run.target.id, response, job), ...run.extra?.() }, "done"),
      );
    } catch (error) {
      const e = toApiError(error);
      if (e.status >= 500) request.log.error({ err: error }, "stream failed");
      await channel.push(sseEvent({ ...e.body(), status: e.status }, "error"));
    } finally {
      await gen?.cancel();
      job.finish();
      run.onEnd?.();
      channel.close();
    }
  };
  void produce();
  return sendSse(reply, channel);
}
