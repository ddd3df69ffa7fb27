// An OpenAI-compatible HTTP API (GET /v1/models, POST /v1/completions, POST /v1/chat/completions)
// in front of any Triton, written on the SDK: requests become TritonLlmClient streams, so every
// model the SDK serves (this project's backend, tensorrtllm_backend's ensemble, ...) speaks it.
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Status, TritonError } from '../errors.js';
import { TritonLlmClient, type GenerateOptions, type GenerationChunk, type GenerateResult } from '../llm.js';
import { applyPenalties, applySampling } from '../adapters/common.js';
import { ChatTemplate, loadChatTemplate, type ChatTemplateMessage } from './chat-template.js';

/** Options of {@link createOpenAiGateway}. */
export interface OpenAiGatewayOptions {
  /** Triton's gRPC address (`host:port`), or a client to use (the gateway does not close it). */
  triton: string | TritonLlmClient;
  /** Bearer key clients must send (`Authorization: Bearer KEY`); none: no check. */
  apiKey?: string | undefined;
  /** Origins allowed by CORS (`*` for any); none: no CORS headers. */
  corsOrigins?: readonly string[] | undefined;
  /** A chat template (Jinja) for every model, instead of each model's tokenizer_config.json. */
  chatTemplate?: ChatTemplate | undefined;
  /** `max_tokens` when a request gives none (default 256). */
  defaultMaxTokens?: number | undefined;
  /** Largest request body (default 8 MiB). */
  maxBodyBytes?: number | undefined;
}

/** A running gateway. */
export interface OpenAiGateway {
  /** The Node HTTP server (not yet listening). */
  readonly server: Server;
  /** Starts listening; resolves to the bound port (0 picks a free one). */
  listen(port: number, host?: string): Promise<number>;
  /** Stops listening, ends open requests and, if it made it, closes the Triton client. */
  close(): Promise<void>;
}

/** An error in OpenAI's shape (`{ error: { message, type, param, code } }`) with its HTTP status. */
class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
  }
}

const invalid = (message: string, param: string | null = null, code: string | null = null): ApiError =>
  new ApiError(400, message, 'invalid_request_error', param, code);

/** OpenAI-style status and type for a Triton error. */
function fromTritonError(error: TritonError): ApiError {
  const text = error.details || error.message;
  switch (error.code) {
    case Status.INVALID_ARGUMENT:
    case Status.OUT_OF_RANGE:
    case Status.FAILED_PRECONDITION:
      return invalid(text);
    case Status.NOT_FOUND:
      return new ApiError(404, text, 'invalid_request_error', 'model', 'model_not_found');
    case Status.UNAVAILABLE:
      return new ApiError(503, text, 'server_error', null, 'triton_unavailable');
    case Status.RESOURCE_EXHAUSTED:
      return new ApiError(429, text, 'rate_limit_error');
    case Status.DEADLINE_EXCEEDED:
      return new ApiError(504, text, 'server_error', null, 'timeout');
    case Status.UNIMPLEMENTED:
      return invalid(text);
    default:
      // Errors a model reports in-band on its stream (Triton sends them without a code) are the
      // model refusing the request as given; anything else is the server's.
      return error.source === 'in-band' ? invalid(text) : new ApiError(500, text, 'server_error');
  }
}

type Json = Record<string, unknown>;

function number(body: Json, name: string, check: (n: number) => boolean, rule: string): number | undefined {
  const value = body[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || !check(value)) {
    throw invalid(`'${name}' must be ${rule}; got ${JSON.stringify(value)}`, name);
  }
  return value;
}

/** The request fields both endpoints share, mapped to the SDK's options. */
function samplingOptions(body: Json, defaultMaxTokens: number): GenerateOptions & { includeUsage: boolean; stream: boolean } {
  const integer = (n: number) => Number.isInteger(n);
  const maxTokens =
    number(body, 'max_completion_tokens', (n) => integer(n) && n >= 1, 'an integer >= 1') ??
    number(body, 'max_tokens', (n) => integer(n) && n >= 1, 'an integer >= 1') ??
    defaultMaxTokens;
  const temperature = number(body, 'temperature', (n) => n >= 0 && n <= 2, 'a number from 0 to 2') ?? 1;
  const topP = number(body, 'top_p', (n) => n > 0 && n <= 1, 'a number above 0 and at most 1');
  const n = number(body, 'n', integer, 'an integer');
  if (n !== undefined && n !== 1) throw invalid(`'n' must be 1: this server generates one choice per request (got ${n})`, 'n');
  const bestOf = number(body, 'best_of', integer, 'an integer');
  if (bestOf !== undefined && bestOf !== 1) throw invalid(`'best_of' must be 1 (got ${bestOf})`, 'best_of');
  const options: GenerateOptions & { includeUsage: boolean; stream: boolean } = {
    prompt: '',
    maxTokens,
    includeUsage: false,
    stream: false,
  };
  applySampling(options, { temperature, topP });
  const seed = number(body, 'seed', (v) => integer(v) && v >= 0, 'a non-negative integer');
  if (seed !== undefined) options.seed = seed;
  applyPenalties(
    options,
    number(body, 'presence_penalty', (v) => v >= -2 && v <= 2, 'a number from -2 to 2'),
    number(body, 'frequency_penalty', (v) => v >= -2 && v <= 2, 'a number from -2 to 2'),
  );
  const stop = body['stop'];
  if (stop !== undefined && stop !== null) {
    const words = typeof stop === 'string' ? [stop] : stop;
    if (!Array.isArray(words) || words.length > 4 || !words.every((w) => typeof w === 'string' && w !== '')) {
      throw invalid("'stop' must be a non-empty string or a list of up to 4 of them", 'stop');
    }
    options.stopWords = words as string[];
  }
  if (body['stream'] !== undefined && body['stream'] !== null && typeof body['stream'] !== 'boolean') {
    throw invalid("'stream' must be a boolean", 'stream');
  }
  options.stream = body['stream'] === true;
  const streamOptions = body['stream_options'];
  if (streamOptions !== undefined && streamOptions !== null) {
    if (typeof streamOptions !== 'object' || Array.isArray(streamOptions)) throw invalid("'stream_options' must be an object", 'stream_options');
    if (!options.stream) throw invalid("'stream_options' is only allowed with 'stream': true", 'stream_options');
    options.includeUsage = (streamOptions as Json)['include_usage'] === true;
  }
  if (body['user'] !== undefined && typeof body['user'] !== 'string') throw invalid("'user' must be a string", 'user');
  for (const unsupported of ['logit_bias', 'tools', 'functions', 'response_format', 'suffix', 'echo']) {
    const value = body[unsupported];
    if (value !== undefined && value !== null && value !== false && !(Array.isArray(value) && value.length === 0)) {
      throw invalid(`'${unsupported}' is not supported by this server`, unsupported);
    }
  }
  return options;
}

/** A message's content as text: a string, or text parts. */
function messageText(content: unknown, index: number): string {
  if (typeof content === 'string') return content;
  if (content === null || content === undefined) return '';
  if (Array.isArray(content)) {
    return content
      .map((part: unknown, p) => {
        const record = part as Json;
        if (record?.['type'] !== 'text' || typeof record['text'] !== 'string') {
          throw invalid(`messages[${index}].content[${p}]: only text parts are supported`, 'messages');
        }
        return record['text'];
      })
      .join('');
  }
  throw invalid(`messages[${index}].content must be a string or a list of text parts`, 'messages');
}

function chatMessages(body: Json): ChatTemplateMessage[] {
  const messages = body['messages'];
  if (!Array.isArray(messages) || messages.length === 0) throw invalid("'messages' must be a non-empty list", 'messages');
  return messages.map((message: unknown, i) => {
    const record = message as Json;
    if (record === null || typeof record !== 'object' || typeof record['role'] !== 'string') {
      throw invalid(`messages[${i}] must be an object with a 'role'`, 'messages');
    }
    const out: ChatTemplateMessage = { role: record['role'], content: messageText(record['content'], i) };
    if (typeof record['name'] === 'string') out.name = record['name'];
    return out;
  });
}

/** The per-token log probabilities of a choice, as OpenAI writes them for chat and for completions. */
function chatLogProbs(chunks: readonly GenerationChunk[]): Json {
  const content: Json[] = [];
  for (const chunk of chunks) {
    (chunk.logProbs ?? []).forEach((logprob, i) => {
      // One token per chunk is the norm; when a response carries several, the text goes with the first.
      const token = i === 0 ? chunk.text : '';
      content.push({ token, logprob, bytes: [...Buffer.from(token, 'utf8')], top_logprobs: [] });
    });
  }
  return { content };
}

function completionLogProbs(chunks: readonly GenerationChunk[]): Json {
  const tokens: string[] = [];
  const tokenLogprobs: number[] = [];
  const offsets: number[] = [];
  let offset = 0;
  for (const chunk of chunks) {
    (chunk.logProbs ?? []).forEach((logprob, i) => {
      const token = i === 0 ? chunk.text : '';
      tokens.push(token);
      tokenLogprobs.push(logprob);
      offsets.push(offset);
      offset += token.length;
    });
  }
  return { tokens, token_logprobs: tokenLogprobs, top_logprobs: tokens.map(() => ({})), text_offset: offsets };
}

async function readBody(request: IncomingMessage, limit: number): Promise<Json> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const part of request) {
    size += (part as Buffer).length;
    if (size > limit) throw new ApiError(413, `the request body is larger than ${limit} bytes`, 'invalid_request_error');
    parts.push(part as Buffer);
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(parts).toString('utf8'));
  } catch (error) {
    throw invalid(`the request body is not valid JSON: ${(error as Error).message}`);
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw invalid('the request body must be a JSON object');
  return body as Json;
}

/**
 * Creates the gateway. `listen()` starts it:
 *
 * ```ts
 * const gateway = createOpenAiGateway({ triton: 'localhost:8001' });
 * const port = await gateway.listen(9000);
 * ```
 */
export function createOpenAiGateway(options: OpenAiGatewayOptions): OpenAiGateway {
  const ownsClient = typeof options.triton === 'string';
  const client = typeof options.triton === 'string' ? new TritonLlmClient({ url: options.triton }) : options.triton;
  const defaultMaxTokens = options.defaultMaxTokens ?? 256;
  const maxBodyBytes = options.maxBodyBytes ?? 8 << 20;
  const fingerprint = 'fp_triton_llm';
  const templates = new Map<string, Promise<ChatTemplate | undefined>>();
  const created = Math.floor(Date.now() / 1000);

  async function templateFor(model: string, signal: AbortSignal): Promise<ChatTemplate> {
    if (options.chatTemplate) return options.chatTemplate;
    let found = templates.get(model);
    if (!found) {
      found = (async () => {
        const config = await client.modelConfig(model, { signal });
        const folders = ['tokenizer_dir', 'checkpoint_dir']
          .map((key) => config.parameters?.[key]?.stringValue)
          .filter((dir): dir is string => typeof dir === 'string' && dir !== '');
        return loadChatTemplate(folders);
      })();
      templates.set(model, found);
      found.catch(() => templates.delete(model));
    }
    const template = await found;
    if (!template) {
      throw invalid(
        `model '${model}' has no chat template: no tokenizer_config.json with a chat_template was found in its ` +
          `tokenizer_dir or checkpoint_dir (as this machine sees them). Start the gateway with --chat-template FILE, ` +
          `or use /v1/completions with your own prompt`,
        'messages',
        'chat_template_missing',
      );
    }
    return template;
  }

  async function models(response: ServerResponse, signal: AbortSignal): Promise<void> {
    const index = await client.repositoryIndex({ ready: true, signal });
    const data: Json[] = [];
    for (const entry of index) {
      try {
        const info = await client.modelInfo(entry.name, { signal });
        if (!('text_input' in info.inputs)) continue;  // not a text LLM
      } catch {
        continue;
      }
      data.push({ id: entry.name, object: 'model', created, owned_by: 'triton' });
    }
    sendJson(response, 200, { object: 'list', data });
  }

  async function complete(kind: 'chat' | 'text', body: Json, request: IncomingMessage, response: ServerResponse, signal: AbortSignal): Promise<void> {
    const model = body['model'];
    if (typeof model !== 'string' || model === '') throw invalid("'model' is required", 'model');
    const sampling = samplingOptions(body, defaultMaxTokens);
    let prompt: string;
    let returnLogProbs = false;
    if (kind === 'chat') {
      const messages = chatMessages(body);
      prompt = (await templateFor(model, signal)).render(messages, true);
      if (body['logprobs'] !== undefined && body['logprobs'] !== null && typeof body['logprobs'] !== 'boolean') {
        throw invalid("'logprobs' must be a boolean", 'logprobs');
      }
      returnLogProbs = body['logprobs'] === true;
      const top = number(body, 'top_logprobs', (n) => Number.isInteger(n) && n >= 0 && n <= 20, 'an integer from 0 to 20');
      if (top !== undefined && top > 0) throw invalid("'top_logprobs' above 0 is not supported: models report the chosen token's log probability only", 'top_logprobs');
    } else {
      const text = body['prompt'];
      const single = Array.isArray(text) && text.length === 1 ? text[0] : text;
      if (typeof single !== 'string') throw invalid("'prompt' must be a string (one prompt per request)", 'prompt');
      prompt = single;
      const logprobs = number(body, 'logprobs', (n) => Number.isInteger(n) && n >= 0 && n <= 5, 'an integer from 0 to 5');
      if (logprobs !== undefined && logprobs > 0) throw invalid("'logprobs' above 0 is not supported: models report the chosen token's log probability only", 'logprobs');
      returnLogProbs = logprobs === 0;
    }
    const { includeUsage, stream: streamed, ...generate } = sampling;
    generate.prompt = prompt;
    generate.model = model;
    if (returnLogProbs) generate.returnLogProbs = true;

    const id = `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID().replaceAll('-', '')}`;
    const createdAt = Math.floor(Date.now() / 1000);
    const object = kind === 'chat' ? 'chat.completion' : 'text_completion';
    const generation = client.stream(generate, { signal });
    const chunks: GenerationChunk[] = [];
    const usageOf = (result: GenerateResult): Json => {
      const promptTokens = result.usage.promptTokens ?? 0;
      const completionTokens = result.usage.completionTokens ?? result.tokenIds?.length ?? 0;
      return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
    };
    const finishOf = (result: GenerateResult): string => (result.finishReason === 'length' ? 'length' : 'stop');

    if (!streamed) {
      for await (const chunk of generation) chunks.push(chunk);
      const result = await generation.result;
      const choice: Json =
        kind === 'chat'
          ? { index: 0, message: { role: 'assistant', content: result.text, refusal: null }, logprobs: returnLogProbs ? chatLogProbs(chunks) : null, finish_reason: finishOf(result) }
          : { index: 0, text: result.text, logprobs: returnLogProbs ? completionLogProbs(chunks) : null, finish_reason: finishOf(result) };
      sendJson(response, 200, { id, object, created: createdAt, model, system_fingerprint: fingerprint, choices: [choice], usage: usageOf(result) });
      return;
    }

    // Server-Sent Events: one chunk per piece of text, the finish reason, usage if asked, [DONE].
    const chunkObject = kind === 'chat' ? 'chat.completion.chunk' : 'text_completion';
    let headersSent = false;
    const send = (payload: Json | '[DONE]'): void => {
      if (!headersSent) {
        response.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache', Connection: 'keep-alive', ...corsHeaders(request) });
        headersSent = true;
      }
      response.write(`data: ${payload === '[DONE]' ? payload : JSON.stringify(payload)}\n\n`);
    };
    const event = (choices: Json[], extra: Json = {}): Json => ({ id, object: chunkObject, created: createdAt, model, system_fingerprint: fingerprint, choices, ...extra });
    try {
      if (kind === 'chat') send(event([{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }], includeUsage ? { usage: null } : {}));
      for await (const chunk of generation) {
        const logprobs = returnLogProbs ? (kind === 'chat' ? chatLogProbs([chunk]) : completionLogProbs([chunk])) : null;
        const choice: Json = kind === 'chat' ? { index: 0, delta: { content: chunk.text }, logprobs, finish_reason: null } : { index: 0, text: chunk.text, logprobs, finish_reason: null };
        send(event([choice], includeUsage ? { usage: null } : {}));
      }
      const result = await generation.result;
      const last: Json = kind === 'chat' ? { index: 0, delta: {}, logprobs: null, finish_reason: finishOf(result) } : { index: 0, text: '', logprobs: null, finish_reason: finishOf(result) };
      send(event([last], includeUsage ? { usage: null } : {}));
      if (includeUsage) send(event([], { usage: usageOf(result) }));
      send('[DONE]');
      response.end();
    } catch (error) {
      if (!headersSent) throw error;
      // Already streaming: the error goes as an event, as OpenAI's API does.
      const apiError = error instanceof ApiError ? error : error instanceof TritonError ? fromTritonError(error) : new ApiError(500, String(error), 'server_error');
      if (!response.destroyed) {
        response.write(`data: ${JSON.stringify(errorBody(apiError))}\n\n`);
        response.end();
      }
    }
  }

  function corsHeaders(request: IncomingMessage): Record<string, string> {
    const allowed = options.corsOrigins;
    const origin = request.headers.origin;
    if (!allowed || allowed.length === 0 || origin === undefined) return {};
    if (!allowed.includes('*') && !allowed.includes(origin)) return {};
    return { 'Access-Control-Allow-Origin': allowed.includes('*') ? '*' : origin, Vary: 'Origin' };
  }

  function errorBody(error: ApiError): Json {
    return { error: { message: error.message, type: error.type, param: error.param, code: error.code } };
  }

  function sendJson(response: ServerResponse, status: number, body: Json): void {
    if (response.headersSent || response.destroyed) return;
    const text = JSON.stringify(body);
    response.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...corsHeaders(response.req) });
    response.end(text);
  }

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    // A client that goes away before the answer is complete cancels its Triton request.
    const controller = new AbortController();
    response.on('close', () => {
      if (!response.writableFinished) controller.abort(new Error('the client disconnected'));
    });
    const path = (request.url ?? '/').split('?')[0]!.replace(/\/+$/, '');
    try {
      if (request.method === 'OPTIONS') {
        const cors = corsHeaders(request);
        response.writeHead(cors['Access-Control-Allow-Origin'] ? 204 : 404, {
          ...cors,
          'Access-Control-Allow-Methods': 'GET, POST, OPTIONS',
          'Access-Control-Allow-Headers': request.headers['access-control-request-headers'] ?? 'Authorization, Content-Type',
        });
        response.end();
        return;
      }
      if (options.apiKey !== undefined && request.headers.authorization !== `Bearer ${options.apiKey}`) {
        throw new ApiError(401, 'Incorrect or missing API key: send it as "Authorization: Bearer KEY"', 'invalid_request_error', null, 'invalid_api_key');
      }
      if (path === '/v1/models') {
        if (request.method !== 'GET') throw new ApiError(405, `${request.method} is not allowed on ${path}; use GET`, 'invalid_request_error');
        await models(response, controller.signal);
        return;
      }
      const modelPath = /^\/v1\/models\/(.+)$/.exec(path);
      if (modelPath && request.method === 'GET') {
        const name = decodeURIComponent(modelPath[1]!);
        await client.modelInfo(name, { signal: controller.signal });
        sendJson(response, 200, { id: name, object: 'model', created, owned_by: 'triton' });
        return;
      }
      const kind = path === '/v1/chat/completions' ? 'chat' : path === '/v1/completions' ? 'text' : undefined;
      if (!kind) throw new ApiError(404, `Unknown route ${request.method} ${path}: this server has /v1/models, /v1/completions and /v1/chat/completions`, 'invalid_request_error', null, 'unknown_url');
      if (request.method !== 'POST') throw new ApiError(405, `${request.method} is not allowed on ${path}; use POST`, 'invalid_request_error');
      await complete(kind, await readBody(request, maxBodyBytes), request, response, controller.signal);
    } catch (error) {
      if (controller.signal.aborted) return;  // nobody to answer
      const apiError = error instanceof ApiError ? error : error instanceof TritonError ? fromTritonError(error) : new ApiError(500, (error as Error)?.message ?? String(error), 'server_error');
      sendJson(response, apiError.status, errorBody(apiError));
    }
  }

  const server = createServer((request, response) => {
    handle(request, response).catch(() => response.destroy());
  });

  return {
    server,
    listen: (port, host = '127.0.0.1') =>
      new Promise<number>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve((server.address() as AddressInfo).port);
        });
      }),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          if (ownsClient) client.close();
          resolve();
        });
      }),
  };
}
