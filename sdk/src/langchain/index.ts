// @triton-llm/sdk/langchain: LangChain.js models on the SDK's TritonLlmClient: ChatTriton (a chat
// model; messages become the prompt through a chat template) and TritonLLM (text completion).
import type { CallbackManagerForLLMRun } from '@langchain/core/callbacks/manager';
import { BaseChatModel, type BaseChatModelCallOptions, type BaseChatModelParams, type LangSmithParams } from '@langchain/core/language_models/chat_models';
import { LLM, type BaseLLMCallOptions, type BaseLLMParams } from '@langchain/core/language_models/llms';
import { AIMessage, AIMessageChunk, ChatMessage, type BaseMessage, type StandardMessageStructure, type UsageMetadata } from '@langchain/core/messages';
import { ChatGenerationChunk, GenerationChunk, type ChatResult, type LLMResult } from '@langchain/core/outputs';
import type { TritonClientOptions } from '../client.js';
import type { GenerateOptions, GenerateResult, TritonLlmClient } from '../llm.js';
import type { ChatTemplate, ChatTemplateMessage } from '../openai/chat-template.js';
import { applyPenalties, applySampling, chatPrompt, resolveClient, rolesOf } from '../adapters/common.js';

export { ChatTemplate, chatTemplateFromConfig, loadChatTemplate, type ChatTemplateMessage } from '../openai/chat-template.js';

/** Generation settings, on the model and (all but `stop`, which LangChain already has) per call. */
export interface TritonGenerationSettings {
  /** Tokens to generate at most (default: the SDK's, 64). */
  maxTokens?: number | undefined;
  /** 0 or unset: greedy decoding; above 0: sampling, with `topP` (default 1) and `topK`. */
  temperature?: number | undefined;
  /** Nucleus sampling threshold, used when `temperature` is above 0. */
  topP?: number | undefined;
  /** Top-k sampling, used when `temperature` is above 0. */
  topK?: number | undefined;
  /** Sampling seed. */
  seed?: number | undefined;
  /** Presence penalty (sent when not 0). */
  presencePenalty?: number | undefined;
  /** Frequency penalty (sent when not 0). */
  frequencyPenalty?: number | undefined;
  /** Repetition penalty (sent when given; 1 = off). */
  repetitionPenalty?: number | undefined;
}

/** Where the models send requests. */
export interface TritonConnectionFields {
  /** Triton's gRPC address (`host:port`); the model makes a client, which `close()` closes. */
  url?: TritonClientOptions['url'];
  /** A client to send through instead of `url` (not closed by `close()`). */
  client?: TritonLlmClient | undefined;
  /** The Triton model (default: the client's model). */
  model?: string | undefined;
  /** Strings that end generation (the output ends before them); a call's `stop` replaces them. */
  stop?: string[] | undefined;
}

/** Options of {@link ChatTriton}. */
export interface ChatTritonInput extends BaseChatModelParams, TritonConnectionFields, TritonGenerationSettings {
  /**
   * Renders the messages into the model's prompt text, e.g. `await loadChatTemplate([tokenizerDir])`.
   * Without one, only a lone human message can be sent: its text is the prompt.
   */
  chatTemplate?: ChatTemplate | undefined;
}

/** Per-call options of {@link ChatTriton}. */
export interface ChatTritonCallOptions extends BaseChatModelCallOptions, TritonGenerationSettings {}

/** Options of {@link TritonLLM}. */
export interface TritonLLMInput extends BaseLLMParams, TritonConnectionFields, TritonGenerationSettings {}

/** Per-call options of {@link TritonLLM}. */
export interface TritonLLMCallOptions extends BaseLLMCallOptions, TritonGenerationSettings {}

/** The generation settings a model keeps from its constructor fields. */
function generationSettings(fields: TritonGenerationSettings & { stop?: string[] | undefined }): TritonGenerationSettings & { stop?: string[] | undefined } {
  return {
    maxTokens: fields.maxTokens,
    temperature: fields.temperature,
    topP: fields.topP,
    topK: fields.topK,
    seed: fields.seed,
    presencePenalty: fields.presencePenalty,
    frequencyPenalty: fields.frequencyPenalty,
    repetitionPenalty: fields.repetitionPenalty,
    stop: fields.stop,
  };
}

/** The SDK request for a prompt: the model's settings with the call's on top. */
function buildRequest(
  prompt: string,
  model: string,
  defaults: TritonGenerationSettings & { stop?: string[] | undefined },
  call: TritonGenerationSettings & { stop?: string[] | undefined },
): GenerateOptions {
  const pick = <K extends keyof TritonGenerationSettings>(key: K): TritonGenerationSettings[K] => call[key] ?? defaults[key];
  const request: GenerateOptions = { prompt, model };
  const maxTokens = pick('maxTokens');
  if (maxTokens !== undefined) request.maxTokens = maxTokens;
  // topP / topK without a temperature above 0 have no effect (greedy decoding), as in the OpenAI gateway.
  applySampling(request, { temperature: pick('temperature'), topP: pick('topP'), topK: pick('topK') });
  const seed = pick('seed');
  if (seed !== undefined) request.seed = seed;
  applyPenalties(request, pick('presencePenalty'), pick('frequencyPenalty'));
  const repetitionPenalty = pick('repetitionPenalty');
  if (repetitionPenalty !== undefined) request.repetitionPenalty = repetitionPenalty;
  const stop = call.stop ?? defaults.stop;
  if (stop && stop.length > 0) request.stopWords = stop;
  return request;
}

/** LangChain's usage metadata, when the server reported both counts. */
function usageMetadataOf(result: GenerateResult): UsageMetadata | undefined {
  const { promptTokens, completionTokens } = result.usage;
  if (promptTokens === undefined || completionTokens === undefined) return undefined;
  return { input_tokens: promptTokens, output_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
}

/** What a response says about itself: `finish_reason` is `stop`, `length` or `unknown` (the model does not report it). */
function responseMetadataOf(result: GenerateResult): Record<string, string | number> {
  const metadata: Record<string, string | number> = {
    finish_reason: result.finishReason,
    model_name: result.model,
    request_id: result.id,
  };
  if (result.usage.promptTokens !== undefined) metadata['prompt_tokens'] = result.usage.promptTokens;
  if (result.usage.completionTokens !== undefined) metadata['completion_tokens'] = result.usage.completionTokens;
  return metadata;
}

/** `llmOutput.tokenUsage`, as LangChain's OpenAI models write it. */
function llmOutputOf(result: GenerateResult): Record<string, unknown> {
  const usage = usageMetadataOf(result);
  return usage ? { tokenUsage: { promptTokens: usage.input_tokens, completionTokens: usage.output_tokens, totalTokens: usage.total_tokens } } : {};
}

/** A message's content as text: a string, or text blocks. */
function messageText(message: BaseMessage, index: number): string {
  const content: unknown = message.content;
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) throw new Error(`messages[${index}]: content must be a string or a list of text blocks`);
  return content
    .map((block: unknown) => {
      const record = block as { type?: unknown; text?: unknown } | null;
      if (record?.type !== 'text' || typeof record.text !== 'string') {
        throw new Error(`messages[${index}]: only text content is supported (got a '${String(record?.type)}' block)`);
      }
      return record.text;
    })
    .join('');
}

/** A LangChain message as a chat-template message (`user`, `assistant`, `system` or a ChatMessage's own role). */
function templateMessage(message: BaseMessage, index: number): ChatTemplateMessage {
  let role: string;
  switch (message.type) {
    case 'human':
      role = 'user';
      break;
    case 'ai': {
      role = 'assistant';
      const toolCalls = (message as AIMessage).tool_calls;
      if (toolCalls && toolCalls.length > 0) throw new Error(`messages[${index}]: tool calls are not supported by ChatTriton`);
      break;
    }
    case 'system':
      role = 'system';
      break;
    case 'generic':
      role = ChatMessage.isInstance(message) ? message.role : 'user';
      break;
    default:
      throw new Error(`messages[${index}]: '${message.type}' messages are not supported by ChatTriton (tools are not)`);
  }
  const out: ChatTemplateMessage = { role, content: messageText(message, index) };
  if (typeof message.name === 'string') out.name = message.name;
  return out;
}

/**
 * A Triton LLM model as a LangChain.js chat model. Messages become the prompt through
 * `chatTemplate`; generation settings map to the SDK's `GenerateOptions` (temperature 0 or unset
 * is greedy). `usage_metadata` is set when the server reports both token counts (this project's
 * backend does); `response_metadata.finish_reason` is `stop`, `length` or `unknown`. A call's
 * `signal` cancels the request on the server.
 *
 * ```ts
 * const chat = new ChatTriton({ url: 'localhost:8001', model: 'llama_fp16', chatTemplate, maxTokens: 128 });
 * const reply = await chat.invoke([new SystemMessage('Be brief.'), new HumanMessage('Name a colour.')]);
 * ```
 *
 * Messages are typed with LangChain's `StandardMessageStructure`: with the default structure,
 * `usage_metadata` and `response_metadata` type as `never` under `exactOptionalPropertyTypes`.
 */
export class ChatTriton extends BaseChatModel<ChatTritonCallOptions, AIMessageChunk<StandardMessageStructure>> {
  /** The client requests go through. */
  readonly client: TritonLlmClient;
  /** The Triton model. */
  readonly model: string;
  /** The model's generation settings (a call's own win). */
  readonly settings: TritonGenerationSettings & { stop?: string[] | undefined };
  private readonly chatTemplate: ChatTemplate | undefined;
  private readonly ownsClient: boolean;

  static override lc_name(): string {
    return 'ChatTriton';
  }

  constructor(fields: ChatTritonInput) {
    super(fields);
    const { client, owned } = resolveClient(fields, 'ChatTriton');
    this.client = client;
    this.ownsClient = owned;
    this.model = fields.model ?? client.model;
    this.chatTemplate = fields.chatTemplate;
    this.settings = generationSettings(fields);
  }

  override _llmType(): string {
    return 'triton';
  }

  /** Closes the client if the model made it (from `url`). */
  close(): void {
    if (this.ownsClient) this.client.close();
  }

  /** The request fields a call sends besides the prompt (for tracing). */
  override invocationParams(options?: this['ParsedCallOptions']): Omit<GenerateOptions, 'prompt'> {
    const { prompt: _prompt, ...params } = buildRequest('', this.model, this.settings, options ?? {});
    return params;
  }

  override getLsParams(options: this['ParsedCallOptions']): LangSmithParams {
    const params: LangSmithParams = { ...super.getLsParams(options), ls_provider: 'triton', ls_model_name: this.model };
    const temperature = options.temperature ?? this.settings.temperature;
    if (temperature !== undefined) params.ls_temperature = temperature;
    const maxTokens = options.maxTokens ?? this.settings.maxTokens;
    if (maxTokens !== undefined) params.ls_max_tokens = maxTokens;
    return params;
  }

  override async _generate(messages: BaseMessage[], options: this['ParsedCallOptions'], _runManager?: CallbackManagerForLLMRun): Promise<ChatResult> {
    const result = await this.client.generate(this.request(messages, options), { signal: options.signal });
    const usage = usageMetadataOf(result);
    const message = new AIMessage<StandardMessageStructure>({ content: result.text, response_metadata: responseMetadataOf(result), ...(usage ? { usage_metadata: usage } : {}) });
    return {
      generations: [{ text: result.text, message, generationInfo: { finish_reason: result.finishReason } }],
      llmOutput: llmOutputOf(result),
    };
  }

  override async *_streamResponseChunks(
    messages: BaseMessage[],
    options: this['ParsedCallOptions'],
    runManager?: CallbackManagerForLLMRun,
  ): AsyncGenerator<ChatGenerationChunk> {
    // Leaving this generator early ends the loop below, which cancels the request on the server.
    const generation = this.client.stream(this.request(messages, options), { signal: options.signal });
    for await (const piece of generation) {
      const chunk = new ChatGenerationChunk({ text: piece.text, message: new AIMessageChunk<StandardMessageStructure>({ content: piece.text }) });
      yield chunk;
      await runManager?.handleLLMNewToken(piece.text, undefined, undefined, undefined, undefined, { chunk });
    }
    const result = await generation.result;
    // The closing chunk carries what is known only at the end; it has no text.
    const usage = usageMetadataOf(result);
    yield new ChatGenerationChunk({
      text: '',
      message: new AIMessageChunk<StandardMessageStructure>({ content: '', response_metadata: responseMetadataOf(result), ...(usage ? { usage_metadata: usage } : {}) }),
      generationInfo: { finish_reason: result.finishReason },
    });
  }

  private request(messages: BaseMessage[], options: this['ParsedCallOptions']): GenerateOptions {
    const converted = messages.map(templateMessage);
    const prompt = chatPrompt(converted, this.chatTemplate);
    if (prompt === undefined) {
      throw new Error(
        `ChatTriton: ${converted.length} messages (${rolesOf(converted)}) take a chat template to become the model's prompt: ` +
          `give new ChatTriton({ ..., chatTemplate }) a ChatTemplate (e.g. await loadChatTemplate([TOKENIZER_DIR]) for a folder with ` +
          `a tokenizer_config.json that has a chat_template), send a single human message, or use TritonLLM for plain text`,
      );
    }
    return buildRequest(prompt, this.model, this.settings, options);
  }
}

/**
 * A Triton LLM model as a LangChain.js text-completion model (`LLM`): the input string is the
 * prompt, sent as is. Settings as {@link ChatTriton}'s; `generationInfo` carries `finish_reason`
 * and, when the server reports them, the token counts.
 *
 * ```ts
 * const llm = new TritonLLM({ url: 'localhost:8001', model: 'llama_fp16', maxTokens: 32 });
 * const text = await llm.invoke('The capital of France is');
 * ```
 */
export class TritonLLM extends LLM<TritonLLMCallOptions> {
  /** The client requests go through. */
  readonly client: TritonLlmClient;
  /** The Triton model. */
  readonly model: string;
  /** The model's generation settings (a call's own win). */
  readonly settings: TritonGenerationSettings & { stop?: string[] | undefined };
  private readonly ownsClient: boolean;

  static override lc_name(): string {
    return 'TritonLLM';
  }

  constructor(fields: TritonLLMInput) {
    super(fields);
    const { client, owned } = resolveClient(fields, 'TritonLLM');
    this.client = client;
    this.ownsClient = owned;
    this.model = fields.model ?? client.model;
    this.settings = generationSettings(fields);
  }

  override _llmType(): string {
    return 'triton';
  }

  /** Closes the client if the model made it (from `url`). */
  close(): void {
    if (this.ownsClient) this.client.close();
  }

  /** The request fields a call sends besides the prompt (for tracing). */
  override invocationParams(options?: this['ParsedCallOptions']): Omit<GenerateOptions, 'prompt'> {
    const { prompt: _prompt, ...params } = buildRequest('', this.model, this.settings, options ?? {});
    return params;
  }

  override async _call(prompt: string, options: this['ParsedCallOptions'], _runManager?: CallbackManagerForLLMRun): Promise<string> {
    return (await this.generateOne(prompt, options)).text;
  }

  /** As `LLM`'s, with the finish reason and token counts of each generation. */
  override async _generate(prompts: string[], options: this['ParsedCallOptions'], _runManager?: CallbackManagerForLLMRun): Promise<LLMResult> {
    const results = await Promise.all(prompts.map((prompt) => this.generateOne(prompt, options)));
    return {
      generations: results.map((result) => [{ text: result.text, generationInfo: { ...responseMetadataOf(result) } }]),
      llmOutput: {},
    };
  }

  override async *_streamResponseChunks(prompt: string, options: this['ParsedCallOptions'], runManager?: CallbackManagerForLLMRun): AsyncGenerator<GenerationChunk> {
    const generation = this.client.stream(buildRequest(prompt, this.model, this.settings, options), { signal: options.signal });
    for await (const piece of generation) {
      const chunk = new GenerationChunk({ text: piece.text });
      yield chunk;
      await runManager?.handleLLMNewToken(piece.text, undefined, undefined, undefined, undefined, { chunk });
    }
    const result = await generation.result;
    yield new GenerationChunk({ text: '', generationInfo: { ...responseMetadataOf(result) } });
  }

  private generateOne(prompt: string, options: this['ParsedCallOptions']): Promise<GenerateResult> {
    return this.client.generate(buildRequest(prompt, this.model, this.settings, options), { signal: options.signal });
  }
}
