// @triton-llm/sdk/ai-sdk: a Vercel AI SDK provider (language model specification v4) on the SDK's
// TritonLlmClient, so generateText, streamText and the rest run on any Triton LLM model.
import {
  InvalidPromptError,
  NoSuchModelError,
  UnsupportedFunctionalityError,
  type JSONObject,
  type LanguageModelV4,
  type LanguageModelV4CallOptions,
  type LanguageModelV4FinishReason,
  type LanguageModelV4GenerateResult,
  type LanguageModelV4Prompt,
  type LanguageModelV4StreamPart,
  type LanguageModelV4StreamResult,
  type LanguageModelV4Usage,
  type ProviderV4,
  type SharedV4ProviderMetadata,
  type SharedV4Warning,
} from '@ai-sdk/provider';
import type { TritonClientOptions } from '../client.js';
import type { FinishReason, GenerateOptions, GenerateResult, RequestOptions, TritonLlmClient, Usage } from '../llm.js';
import type { ChatTemplate, ChatTemplateMessage } from '../openai/chat-template.js';
import { applyPenalties, applySampling, chatPrompt, resolveClient, rolesOf } from '../adapters/common.js';

export { ChatTemplate, chatTemplateFromConfig, loadChatTemplate, type ChatTemplateMessage } from '../openai/chat-template.js';

/** Options of {@link createTriton}. */
export interface TritonProviderSettings {
  /** Triton's gRPC address (`host:port`); the provider makes a client, which `close()` closes. */
  url?: TritonClientOptions['url'];
  /** A client to send through instead of `url` (the provider does not close it). */
  client?: TritonLlmClient | undefined;
  /** The model `triton()` addresses when called without an id (default: the client's model). */
  model?: string | undefined;
  /**
   * Renders chat prompts (system instructions, several messages) into the model's prompt text,
   * e.g. `await loadChatTemplate([tokenizerDir])`. Without one, only a prompt that is a single
   * user message (as `generateText({ prompt })` makes) can be sent: its text is the prompt.
   */
  chatTemplate?: ChatTemplate | undefined;
}

/** What {@link createTriton} returns: call it (or `languageModel()`) for a model. */
export interface TritonProvider extends ProviderV4 {
  /** The language model `modelId` (default: the settings' `model`). */
  (modelId?: string): TritonLanguageModel;
  /** The language model `modelId` (default: the settings' `model`). */
  languageModel(modelId?: string): TritonLanguageModel;
  /** The client the models send through. */
  readonly client: TritonLlmClient;
  /** Closes the client if the provider made it (from `url`). */
  close(): void;
}

/** Options of {@link TritonLanguageModel}. */
export interface TritonLanguageModelSettings {
  /** The Triton model requests address. */
  modelId: string;
  /** The client requests go through. */
  client: TritonLlmClient;
  /** See {@link TritonProviderSettings.chatTemplate}. */
  chatTemplate?: ChatTemplate | undefined;
}

/**
 * A Triton LLM model as an AI SDK language model. Settings map to the SDK's {@link GenerateOptions}:
 * `maxOutputTokens` → `maxTokens` (the SDK's default, 64, when unset); `temperature` 0 or unset is
 * greedy, above 0 it samples with `topP` (default 1) and `topK`; `seed`, `stopSequences`, and
 * presence / frequency penalties other than 0 are sent as given. Tools, JSON response formats and
 * reasoning efforts are not supported and come back as warnings. The abort signal cancels the
 * request on the server.
 */
export class TritonLanguageModel implements LanguageModelV4 {
  readonly specificationVersion = 'v4';
  readonly provider = 'triton';
  readonly modelId: string;
  /** None: the model takes text only, so URLs are never passed through. */
  readonly supportedUrls: Record<string, RegExp[]> = {};
  private readonly client: TritonLlmClient;
  private readonly chatTemplate: ChatTemplate | undefined;

  constructor(settings: TritonLanguageModelSettings) {
    this.modelId = settings.modelId;
    this.client = settings.client;
    this.chatTemplate = settings.chatTemplate;
  }

  async doGenerate(options: LanguageModelV4CallOptions): Promise<LanguageModelV4GenerateResult> {
    const { request, call, warnings } = this.prepare(options);
    const timestamp = new Date();
    const result = await this.client.generate(request, call);
    return {
      content: result.text === '' ? [] : [{ type: 'text', text: result.text }],
      finishReason: finishReasonOf(result.finishReason),
      usage: usageOf(result.usage),
      providerMetadata: metadataOf(result),
      request: { body: request },
      response: { id: result.id, modelId: result.model, timestamp },
      warnings,
    };
  }

  async doStream(options: LanguageModelV4CallOptions): Promise<LanguageModelV4StreamResult> {
    const { request, call, warnings } = this.prepare(options);
    const timestamp = new Date();
    const generation = this.client.stream(request, call);
    const chunks = generation[Symbol.asyncIterator]();
    const textId = 'text-0';
    let textStarted = false;
    let cancelled = false;
    const finish = (controller: ReadableStreamDefaultController<LanguageModelV4StreamPart>, result: GenerateResult): void => {
      if (textStarted) controller.enqueue({ type: 'text-end', id: textId });
      controller.enqueue({ type: 'response-metadata', id: result.id, modelId: result.model, timestamp });
      controller.enqueue({ type: 'finish', usage: usageOf(result.usage), finishReason: finishReasonOf(result.finishReason), providerMetadata: metadataOf(result) });
    };
    const stream = new ReadableStream<LanguageModelV4StreamPart>({
      start: (controller) => {
        controller.enqueue({ type: 'stream-start', warnings });
      },
      // One chunk per pull: the SDK's stream holds what the reader has not asked for yet.
      pull: async (controller) => {
        try {
          const next = await chunks.next();
          if (cancelled) return;
          if (!next.done) {
            if (options.includeRawChunks) controller.enqueue({ type: 'raw', rawValue: next.value });
            if (!textStarted) {
              controller.enqueue({ type: 'text-start', id: textId });
              textStarted = true;
            }
            controller.enqueue({ type: 'text-delta', id: textId, delta: next.value.text });
            return;
          }
          const result = await generation.result;
          if (cancelled) return;
          finish(controller, result);
          controller.close();
        } catch (error) {
          if (cancelled) return;
          // An abort is the caller's doing: end the stream with its reason, as a fetch would.
          if (options.abortSignal?.aborted) {
            controller.error(options.abortSignal.reason);
            return;
          }
          controller.enqueue({ type: 'error', error });
          if (textStarted) controller.enqueue({ type: 'text-end', id: textId });
          controller.enqueue({ type: 'finish', usage: usageOf({}), finishReason: { unified: 'error', raw: undefined } });
          controller.close();
        }
      },
      cancel: async () => {
        // The reader went away: ending the iteration cancels the request on the server too.
        cancelled = true;
        await chunks.return?.();
      },
    });
    return { stream, request: { body: request } };
  }

  /** The SDK request, per-call options and warnings for a call. */
  private prepare(options: LanguageModelV4CallOptions): { request: GenerateOptions; call: RequestOptions; warnings: SharedV4Warning[] } {
    const warnings: SharedV4Warning[] = [];
    const request: GenerateOptions = { prompt: this.promptOf(options.prompt, warnings), model: this.modelId };
    if (options.maxOutputTokens !== undefined) request.maxTokens = options.maxOutputTokens;
    for (const setting of applySampling(request, { temperature: options.temperature, topP: options.topP, topK: options.topK })) {
      warnings.push({ type: 'other', message: `${setting} is ignored: temperature 0 or unset means greedy decoding; set temperature above 0 to sample` });
    }
    if (options.seed !== undefined) request.seed = options.seed;
    if (options.stopSequences && options.stopSequences.length > 0) request.stopWords = options.stopSequences;
    applyPenalties(request, options.presencePenalty, options.frequencyPenalty);

    if (options.tools && options.tools.length > 0) {
      warnings.push({ type: 'unsupported', feature: 'tools', details: 'the model generates text only; tools are not sent' });
    }
    if (options.responseFormat?.type === 'json') {
      warnings.push({ type: 'unsupported', feature: 'responseFormat', details: 'JSON output is not enforced: the model generates free text' });
    }
    if (options.reasoning !== undefined && options.reasoning !== 'provider-default' && options.reasoning !== 'none') {
      warnings.push({ type: 'unsupported', feature: 'reasoning', details: `reasoning effort '${options.reasoning}' cannot be set on Triton LLM models` });
    }

    const call: RequestOptions = {};
    if (options.abortSignal) call.signal = options.abortSignal;
    const headers = metadataHeaders(options.headers);
    if (headers) call.headers = headers;
    return { request, call, warnings };
  }

  /** The prompt text: the chat template's rendering, or the text of a lone user message. */
  private promptOf(prompt: LanguageModelV4Prompt, warnings: SharedV4Warning[]): string {
    const messages = prompt.map((message, index): ChatTemplateMessage => {
      switch (message.role) {
        case 'system':
          return { role: 'system', content: message.content };
        case 'user':
        case 'assistant': {
          let content = '';
          for (const part of message.content) {
            if (part.type === 'text') content += part.text;
            else if (part.type === 'reasoning') {
              warnings.push({ type: 'other', message: `prompt[${index}]: reasoning parts of assistant messages are left out of the prompt` });
            } else {
              throw new UnsupportedFunctionalityError({
                functionality: `${part.type} parts in prompts`,
                message: `prompt[${index}] (${message.role}) has a '${part.type}' part: Triton LLM models take text only`,
              });
            }
          }
          return { role: message.role, content };
        }
        case 'tool':
          throw new UnsupportedFunctionalityError({ functionality: 'tool messages', message: `prompt[${index}] is a tool message: this provider does not support tools` });
      }
    });
    const text = chatPrompt(messages, this.chatTemplate);
    if (text !== undefined) return text;
    throw new InvalidPromptError({
      prompt,
      message:
        `this prompt has ${messages.length} messages (${rolesOf(messages)}), which take a chat template to become the model's prompt: ` +
        `give createTriton({ ..., chatTemplate }) a ChatTemplate (e.g. await loadChatTemplate([TOKENIZER_DIR]) for a folder with a ` +
        `tokenizer_config.json that has a chat_template), or send one user message (generateText({ prompt }))`,
    });
  }
}

/** The AI SDK's finish reason for the SDK's: `unknown` (the model does not report it) is `other`. */
function finishReasonOf(reason: FinishReason): LanguageModelV4FinishReason {
  return reason === 'unknown' ? { unified: 'other', raw: undefined } : { unified: reason, raw: reason };
}

/** Token counts as the AI SDK wants them; counts the server does not report stay undefined. */
function usageOf(usage: Usage): LanguageModelV4Usage {
  const raw: JSONObject = {};
  if (usage.promptTokens !== undefined) raw['promptTokens'] = usage.promptTokens;
  if (usage.completionTokens !== undefined) raw['completionTokens'] = usage.completionTokens;
  return {
    // Triton reports no prompt-cache use, so the cache fields stay unknown.
    inputTokens: { total: usage.promptTokens, noCache: undefined, cacheRead: undefined, cacheWrite: undefined },
    outputTokens: { total: usage.completionTokens, text: usage.completionTokens, reasoning: undefined },
    raw,
  };
}

/** `triton`: the request id and the client-side timings. */
function metadataOf(result: GenerateResult): SharedV4ProviderMetadata {
  return { triton: { requestId: result.id, ttftMs: result.timings.ttftMs, totalMs: result.timings.totalMs } };
}

/**
 * The call's headers as gRPC metadata, lower-cased; the AI SDK's `user-agent` is left out (gRPC
 * sends its own).
 */
function metadataHeaders(headers: Record<string, string | undefined> | undefined): Record<string, string> | undefined {
  if (!headers) return undefined;
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    const key = name.toLowerCase();
    if (value !== undefined && key !== 'user-agent') out[key] = value;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/**
 * Creates the provider:
 *
 * ```ts
 * import { generateText } from 'ai';
 * const triton = createTriton({ url: 'localhost:8001', model: 'llama_fp16' });
 * const { text } = await generateText({ model: triton(), prompt: 'The capital of France is', maxOutputTokens: 16 });
 * triton.close();
 * ```
 */
export function createTriton(settings: TritonProviderSettings): TritonProvider {
  const { client, owned } = resolveClient(settings, 'createTriton');
  const languageModel = (modelId?: string): TritonLanguageModel => {
    return new TritonLanguageModel({ modelId: modelId ?? settings.model ?? client.model, client, chatTemplate: settings.chatTemplate });
  };
  const noModel = (modelType: 'embeddingModel' | 'imageModel') => (modelId: string): never => {
    throw new NoSuchModelError({ modelId, modelType, message: `the Triton provider has language models only (no ${modelType} '${modelId}')` });
  };
  return Object.assign(languageModel, {
    specificationVersion: 'v4' as const,
    languageModel,
    embeddingModel: noModel('embeddingModel'),
    imageModel: noModel('imageModel'),
    client,
    close: () => {
      if (owned) client.close();
    },
  });
}
