// The AI SDK provider and the LangChain.js models against the dev server: the same greedy text as
// the SDK's generate(), usage and finish reasons, streaming, chat templates, and cancellation
// seen by the server (its Prometheus counter of cancelled requests).
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidPromptError, type LanguageModelV4StreamPart } from '@ai-sdk/provider';
import { HumanMessage, SystemMessage } from '@langchain/core/messages';
import { generateText, streamText } from 'ai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Status, TritonError, TritonLlmClient } from '../../sdk/src/index.js';
import { createTriton, loadChatTemplate, type ChatTemplate, type TritonProvider } from '../../sdk/src/ai-sdk/index.js';
import { ChatTriton, TritonLLM } from '../../sdk/src/langchain/index.js';
import { buildDir } from '../helpers/paths.js';
import { TempRepository } from '../helpers/repository.js';
import { llama2ChatTemplate as llama2Template } from '../helpers/chat-template.js';
import { cancelledRequests, expectCancelledRequests, modelCounter } from '../helpers/metrics.js';
import { startServer, type RunningServer } from '../helpers/server.js';

const tiny = join(buildDir, 'models', 'synth-tiny-float16');
const prompt = 'The quick brown fox';

const rendered = '<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nName a colour. [/INST]';

/** Prompt tokens of the requests the engine accepted: it grows once a request is in. */
const acceptedPromptTokens = (server: RunningServer) => modelCounter(server, 'tiny', 'nv_llm_tokens_total', 'token_type', 'prompt');

describe('adapters', () => {
  let repository: TempRepository;
  let server: RunningServer;
  let scratch: string;
  let sdk: TritonLlmClient;
  let template: ChatTemplate;

  beforeAll(async () => {
    if (!existsSync(join(tiny, 'config.json'))) throw new Error(`${tiny} is missing: run bash scripts/setup.sh first`);
    scratch = mkdtempSync(join(tmpdir(), 'llm-adapters-'));
    const tokenizerDir = join(scratch, 'tokenizer');
    mkdirSync(tokenizerDir);
    copyFileSync(join(tiny, 'tokenizer.model'), join(tokenizerDir, 'tokenizer.model'));
    writeFileSync(join(tokenizerDir, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<s>', eos_token: '</s>', chat_template: llama2Template }));
    repository = new TempRepository().add({ name: 'tiny', checkpointDir: tiny, decoupled: true, parameters: { tokenizer_dir: tokenizerDir } });
    server = await startServer(repository.dir);
    sdk = new TritonLlmClient({ url: server.address, model: 'tiny' });
    const loaded = await loadChatTemplate([tokenizerDir]);
    if (!loaded) throw new Error('the test tokenizer_config.json has no chat template');
    template = loaded;
  });

  afterAll(async () => {
    sdk?.close();
    if (server) expect(await server.stop()).toBe(0);
    repository?.remove();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  describe('AI SDK provider', () => {
    let triton: TritonProvider;
    let chat: TritonProvider;

    beforeAll(() => {
      triton = createTriton({ url: server.address, model: 'tiny' });
      chat = createTriton({ client: sdk, model: 'tiny', chatTemplate: template });
    });

    afterAll(() => {
      triton?.close();
      chat?.close();
    });

    it('generateText gives the SDK\'s greedy text, usage and finish reason', async () => {
      const expected = await sdk.generate({ prompt, maxTokens: 10 });
      expect(expected.usage.promptTokens).toBeGreaterThan(0);
      expect(expected.usage.completionTokens).toBe(10);
      expect(expected.finishReason).toBe('length');
      const result = await generateText({ model: triton(), prompt, maxOutputTokens: 10, temperature: 0, include: { requestBody: true } });
      expect(result.text).toBe(expected.text);
      expect(result.finishReason).toBe('length');
      expect(result.rawFinishReason).toBe('length');
      expect(result.usage.inputTokens).toBe(expected.usage.promptTokens);
      expect(result.usage.outputTokens).toBe(expected.usage.completionTokens);
      expect(result.usage.totalTokens).toBe(expected.usage.promptTokens! + expected.usage.completionTokens!);
      expect(result.warnings).toEqual([]);
      expect(result.response.modelId).toBe('tiny');
      // The request as sent: greedy, nothing else set.
      expect(result.request.body).toEqual({ prompt, model: 'tiny', maxTokens: 10 });

      // The AI SDK leaves temperature unset by default: greedy too.
      const byDefault = await generateText({ model: triton('tiny'), prompt, maxOutputTokens: 10 });
      expect(byDefault.text).toBe(expected.text);
    });

    it('reports a stop before maxOutputTokens as finish reason stop', async () => {
      const expected = await sdk.generate({ prompt, maxTokens: 12 });
      const words = expected.text.trim().split(/\s+/);
      const stopWord = words[Math.min(2, words.length - 1)]!;
      const stopped = await sdk.generate({ prompt, maxTokens: 12, stopWords: [stopWord] });
      expect(stopped.finishReason).toBe('stop');
      const result = await generateText({ model: triton(), prompt, maxOutputTokens: 12, stopSequences: [stopWord] });
      expect(result.text).toBe(stopped.text);
      expect(result.finishReason).toBe('stop');
      expect(result.usage.outputTokens).toBe(stopped.usage.completionTokens);
    });

    it('streamText streams the same text, with usage and finish reason', async () => {
      const expected = await sdk.generate({ prompt, maxTokens: 12 });
      const result = streamText({ model: triton(), prompt, maxOutputTokens: 12, temperature: 0 });
      const pieces: string[] = [];
      for await (const piece of result.textStream) pieces.push(piece);
      expect(pieces.length).toBeGreaterThan(1);
      expect(pieces.join('')).toBe(expected.text);
      expect(await result.text).toBe(expected.text);
      expect(await result.finishReason).toBe('length');
      const usage = await result.usage;
      expect(usage.inputTokens).toBe(expected.usage.promptTokens);
      expect(usage.outputTokens).toBe(expected.usage.completionTokens);
    });

    it('renders chat messages with the chat template', async () => {
      const expected = await sdk.generate({ prompt: rendered, maxTokens: 8 });
      const result = await generateText({
        model: chat(),
        instructions: 'Be brief.',
        messages: [{ role: 'user', content: 'Name a colour.' }],
        maxOutputTokens: 8,
        temperature: 0,
        include: { requestBody: true },
      });
      expect(result.request.body).toMatchObject({ prompt: rendered });
      expect(result.text).toBe(expected.text);
      expect(result.usage.inputTokens).toBe(expected.usage.promptTokens);
      const streamed = streamText({ model: chat(), instructions: 'Be brief.', prompt: [{ role: 'user', content: 'Name a colour.' }], maxOutputTokens: 8 });
      expect(await streamed.text).toBe(expected.text);
    });

    it('refuses chat messages without a chat template, saying how to give one', async () => {
      const failure = await generateText({ model: triton(), instructions: 'Be brief.', prompt: 'Name a colour.', maxRetries: 0 }).catch((e: unknown) => e);
      expect(InvalidPromptError.isInstance(failure)).toBe(true);
      expect((failure as Error).message).toMatch(/chatTemplate/);
      expect((failure as Error).message).toMatch(/loadChatTemplate/);
    });

    it('warns about settings it cannot honour, and samples with temperature above 0', async () => {
      const result = await triton().doGenerate({
        prompt: [{ role: 'user', content: [{ type: 'text', text: prompt }] }],
        maxOutputTokens: 4,
        topK: 5,
        tools: [{ type: 'function', name: 'lookup', inputSchema: { type: 'object' } }],
        responseFormat: { type: 'json' },
      });
      expect(result.warnings).toEqual([
        { type: 'other', message: expect.stringMatching(/^topK is ignored/) },
        { type: 'unsupported', feature: 'tools', details: expect.any(String) },
        { type: 'unsupported', feature: 'responseFormat', details: expect.any(String) },
      ]);
      expect(result.request?.body).toEqual({ prompt, model: 'tiny', maxTokens: 4 });

      const sampled = await generateText({ model: triton(), prompt, maxOutputTokens: 6, temperature: 0.8, seed: 7, topK: 20, include: { requestBody: true } });
      expect(sampled.request.body).toEqual({ prompt, model: 'tiny', maxTokens: 6, temperature: 0.8, topP: 1, topK: 20, seed: 7 });
      expect(sampled.usage.outputTokens).toBeGreaterThan(0);
    });

    it('reports Triton errors: thrown by doGenerate, an error part then finish "error" from doStream', async () => {
      const failure = await generateText({ model: triton('nope'), prompt, maxRetries: 0 }).catch((e: unknown) => e);
      expect(failure).toBeInstanceOf(TritonError);
      expect((failure as TritonError).code).toBe(Status.NOT_FOUND);
      const { stream } = await triton('nope').doStream({ prompt: [{ role: 'user', content: [{ type: 'text', text: prompt }] }] });
      const parts: LanguageModelV4StreamPart[] = [];
      for await (const part of stream) parts.push(part);
      expect(parts.map((p) => p.type)).toEqual(['stream-start', 'error', 'finish']);
      expect((parts[1] as { error: unknown }).error).toBeInstanceOf(TritonError);
      expect(parts[2]).toMatchObject({ finishReason: { unified: 'error' } });
    });

    it('cancels the Triton request when streamText is aborted', async () => {
      const before = await cancelledRequests(server, 'tiny');
      const controller = new AbortController();
      const result = streamText({ model: triton(), prompt, maxOutputTokens: 2000, temperature: 0, abortSignal: controller.signal });
      let pieces = 0;
      for await (const _ of result.textStream) {
        if (++pieces === 2) controller.abort();
      }
      expect(pieces).toBeGreaterThanOrEqual(2);
      expect(pieces).toBeLessThan(2000);
      await expectCancelledRequests(server, 'tiny', before + 1);
    });

    it('cancels the Triton request when generateText is aborted', async () => {
      const before = await cancelledRequests(server, 'tiny');
      const accepted = await acceptedPromptTokens(server);
      const controller = new AbortController();
      const result = generateText({ model: triton(), prompt, maxOutputTokens: 2000, abortSignal: controller.signal, maxRetries: 0 });
      // Abort once the engine has the request (2000 tokens take seconds on the tiny model).
      const giveUp = Date.now() + 10_000;
      while ((await acceptedPromptTokens(server)) === accepted) {
        if (Date.now() > giveUp) throw new Error('the request never reached the engine');
        await new Promise((r) => setTimeout(r, 10));
      }
      controller.abort();
      await expect(result).rejects.toThrow();
      await expectCancelledRequests(server, 'tiny', before + 1);
    });

    it('cancels the Triton request when the reader cancels the model stream', async () => {
      const before = await cancelledRequests(server, 'tiny');
      const { stream } = await triton().doStream({ prompt: [{ role: 'user', content: [{ type: 'text', text: prompt }] }], maxOutputTokens: 2000 });
      const reader = stream.getReader();
      const parts: LanguageModelV4StreamPart['type'][] = [];
      while (parts.filter((type) => type === 'text-delta').length < 2) {
        const { value, done } = await reader.read();
        if (done) throw new Error('the stream ended early');
        parts.push(value.type);
      }
      expect(parts.slice(0, 2)).toEqual(['stream-start', 'text-start']);
      await reader.cancel();
      await expectCancelledRequests(server, 'tiny', before + 1);
    });
  });

  describe('LangChain.js', () => {
    let chat: ChatTriton;
    let llm: TritonLLM;

    beforeAll(() => {
      chat = new ChatTriton({ url: server.address, model: 'tiny', maxTokens: 10 });
      llm = new TritonLLM({ client: sdk, maxTokens: 10 });
    });

    afterAll(() => {
      chat?.close();
      llm?.close();
    });

    it('ChatTriton.invoke gives the SDK\'s text with usage_metadata and finish_reason', async () => {
      const expected = await sdk.generate({ prompt, maxTokens: 10 });
      const reply = await chat.invoke(prompt);
      expect(reply.content).toBe(expected.text);
      expect(reply.usage_metadata).toEqual({
        input_tokens: expected.usage.promptTokens,
        output_tokens: expected.usage.completionTokens,
        total_tokens: expected.usage.promptTokens! + expected.usage.completionTokens!,
      });
      expect(reply.response_metadata).toMatchObject({ finish_reason: 'length', model_name: 'tiny' });
      // Call options win over the model's.
      const shorter = await chat.invoke(prompt, { maxTokens: 4 });
      expect(shorter.usage_metadata?.output_tokens).toBe(4);
      expect(expected.text.startsWith(shorter.text)).toBe(true);
    });

    it('ChatTriton.stream chunks concatenate to the same text, the last one with usage', async () => {
      const expected = await sdk.generate({ prompt, maxTokens: 10 });
      const chunks = [];
      for await (const chunk of await chat.stream([new HumanMessage(prompt)])) chunks.push(chunk);
      expect(chunks.length).toBeGreaterThan(2);
      expect(chunks.map((c) => c.text).join('')).toBe(expected.text);
      const whole = chunks.reduce((a, b) => a.concat(b));
      expect(whole.usage_metadata?.input_tokens).toBe(expected.usage.promptTokens);
      expect(whole.usage_metadata?.output_tokens).toBe(expected.usage.completionTokens);
      expect(whole.response_metadata['finish_reason']).toBe('length');
    });

    it('ChatTriton renders messages with the chat template, and refuses them without one', async () => {
      const expected = await sdk.generate({ prompt: rendered, maxTokens: 8 });
      const templated = new ChatTriton({ client: sdk, model: 'tiny', chatTemplate: template, maxTokens: 8 });
      const reply = await templated.invoke([new SystemMessage('Be brief.'), new HumanMessage('Name a colour.')]);
      expect(reply.content).toBe(expected.text);
      expect(reply.usage_metadata?.input_tokens).toBe(expected.usage.promptTokens);
      await expect(chat.invoke([new SystemMessage('Be brief.'), new HumanMessage('Name a colour.')])).rejects.toThrow(/chatTemplate/);
    });

    it('ChatTriton cancels the Triton request when the signal aborts a stream', async () => {
      const before = await cancelledRequests(server, 'tiny');
      const controller = new AbortController();
      const stream = await chat.stream(prompt, { signal: controller.signal, maxTokens: 2000 });
      let chunks = 0;
      const failure = await (async () => {
        for await (const _ of stream) {
          if (++chunks === 2) controller.abort();
        }
      })().catch((e: unknown) => e);
      expect(failure).toBeInstanceOf(Error);
      expect(chunks).toBe(2);
      await expectCancelledRequests(server, 'tiny', before + 1);
    });

    it('TritonLLM.invoke and stream give the SDK\'s text', async () => {
      const expected = await sdk.generate({ prompt, maxTokens: 10 });
      expect(await llm.invoke(prompt)).toBe(expected.text);
      const pieces: string[] = [];
      for await (const piece of await llm.stream(prompt)) pieces.push(piece);
      expect(pieces.length).toBeGreaterThan(2);
      expect(pieces.join('')).toBe(expected.text);
      const generated = await llm.generate([prompt]);
      expect(generated.generations[0]![0]!.generationInfo).toMatchObject({
        finish_reason: 'length',
        prompt_tokens: expected.usage.promptTokens,
        completion_tokens: expected.usage.completionTokens,
      });
    });
  });
});
