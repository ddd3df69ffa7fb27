// The OpenAI-compatible gateway in front of the dev server, checked with the official `openai`
// npm client: the same greedy text as the SDK, usage from the model's tokenizer, streaming,
// abort, errors, chat templates.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TritonLlmClient } from '../../sdk/src/index.js';
import { ChatTemplate, chatTemplateFromConfig, createOpenAiGateway, type OpenAiGateway } from '../../sdk/src/openai/index.js';
import { buildDir } from '../helpers/paths.js';
import { cliGreedy, TempRepository } from '../helpers/repository.js';
import { llama2ChatTemplate as llama2Template } from '../helpers/chat-template.js';
import { cancelledRequests, expectCancelledRequests } from '../helpers/metrics.js';
import { startServer, type RunningServer } from '../helpers/server.js';

const tiny = join(buildDir, 'models', 'synth-tiny-float16');
const prompt = 'The quick brown fox';


describe('OpenAI-compatible gateway', () => {
  let repository: TempRepository;
  let server: RunningServer;
  let scratch: string;
  let gateway: OpenAiGateway;
  let openai: OpenAI;
  let sdk: TritonLlmClient;

  beforeAll(async () => {
    if (!existsSync(join(tiny, 'config.json'))) throw new Error(`${tiny} is missing: run bash scripts/setup.sh first`);
    scratch = mkdtempSync(join(tmpdir(), 'llm-openai-'));
    // A tokenizer folder with a chat template: the gateway finds it through the model's tokenizer_dir.
    const tokenizerDir = join(scratch, 'tokenizer');
    mkdirSync(tokenizerDir);
    copyFileSync(join(tiny, 'tokenizer.model'), join(tokenizerDir, 'tokenizer.model'));
    writeFileSync(join(tokenizerDir, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<s>', eos_token: '</s>', chat_template: llama2Template }));
    repository = new TempRepository()
      .add({ name: 'tiny', checkpointDir: tiny, decoupled: true, parameters: { tokenizer_dir: tokenizerDir } })
      .add({ name: 'tiny_unary', checkpointDir: tiny, decoupled: false });
    server = await startServer(repository.dir);
    gateway = createOpenAiGateway({ triton: server.address });
    const port = await gateway.listen(0);
    openai = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'unused', maxRetries: 0 });
    sdk = new TritonLlmClient({ url: server.address, model: 'tiny' });
  });

  afterAll(async () => {
    sdk?.close();
    await gateway?.close();
    if (server) expect(await server.stop()).toBe(0);
    repository?.remove();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('lists the ready LLM models', async () => {
    const models = await openai.models.list();
    expect(models.data.map((m) => m.id).sort()).toEqual(['tiny', 'tiny_unary']);
    expect(models.data[0]).toMatchObject({ object: 'model', owned_by: 'triton' });
  });

  it('completes with the SDK\'s greedy text and the tokenizer\'s token counts', async () => {
    const reference = cliGreedy(tiny, prompt, 10);
    const expected = await sdk.generate({ prompt, maxTokens: 10 });
    expect(expected.text).toBe(reference.text);
    for (const model of ['tiny', 'tiny_unary']) {
      const completion = await openai.completions.create({ model, prompt, max_tokens: 10, temperature: 0 });
      expect(completion.object).toBe('text_completion');
      expect(completion.id).toMatch(/^cmpl-/);
      expect(completion.system_fingerprint).toBe('fp_triton_llm');
      expect(completion.choices).toHaveLength(1);
      expect(completion.choices[0]!.text).toBe(expected.text);
      expect(completion.choices[0]!.finish_reason).toBe(reference.finish_reason);
      expect(completion.usage).toEqual({
        prompt_tokens: reference.prompt_tokens,
        completion_tokens: reference.token_ids.length,
        total_tokens: reference.prompt_tokens + reference.token_ids.length,
      });
    }
  });

  it('streams completions as SSE chunks ending in [DONE], with usage when asked', async () => {
    const whole = await openai.completions.create({ model: 'tiny', prompt, max_tokens: 12, temperature: 0 });
    const stream = await openai.completions.create({ model: 'tiny', prompt, max_tokens: 12, temperature: 0, stream: true, stream_options: { include_usage: true } });
    let text = '';
    const finishes: (string | null)[] = [];
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      if (chunk.choices[0]) {
        text += chunk.choices[0].text;
        finishes.push(chunk.choices[0].finish_reason);
      }
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe(whole.choices[0]!.text);
    expect(finishes.filter((f) => f !== null)).toEqual([whole.choices[0]!.finish_reason]);
    expect(usage).toEqual(whole.usage);
  });

  it('renders the model\'s chat template and answers chat completions, streamed or not', async () => {
    const messages: OpenAI.ChatCompletionMessageParam[] = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Name a colour.' },
    ];
    const rendered = '<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nName a colour. [/INST]';
    const expected = await sdk.generate({ prompt: rendered, maxTokens: 8 });
    const chat = await openai.chat.completions.create({ model: 'tiny', messages, max_tokens: 8, temperature: 0 });
    expect(chat.object).toBe('chat.completion');
    expect(chat.choices[0]!.message).toMatchObject({ role: 'assistant', content: expected.text });
    expect(chat.usage?.prompt_tokens).toBe(expected.usage.promptTokens);
    const stream = await openai.chat.completions.create({ model: 'tiny', messages, max_tokens: 8, temperature: 0, stream: true });
    let text = '';
    let role: string | undefined;
    for await (const chunk of stream) {
      role ??= chunk.choices[0]?.delta.role;
      text += chunk.choices[0]?.delta.content ?? '';
    }
    expect(role).toBe('assistant');
    expect(text).toBe(expected.text);
  });

  it('returns log probabilities where the model reports them', async () => {
    const chat = await openai.chat.completions.create({
      model: 'tiny', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4, temperature: 0, logprobs: true,
    });
    const content = chat.choices[0]!.logprobs?.content ?? [];
    expect(content).toHaveLength(chat.usage!.completion_tokens);
    expect(content.map((t) => t.token).join('')).toBe(chat.choices[0]!.message.content);
    for (const token of content) expect(token.logprob).toBeLessThanOrEqual(0);
  });

  it('cancels the Triton request when the client aborts a stream', async () => {
    const before = await cancelledRequests(server, 'tiny');
    const controller = new AbortController();
    const stream = await openai.completions.create(
      { model: 'tiny', prompt, max_tokens: 2000, temperature: 0, stream: true },
      { signal: controller.signal },
    );
    let chunks = 0;
    try {
      for await (const _ of stream) {
        if (++chunks === 2) controller.abort();
      }
    } catch {
      // the client reports its own abort
    }
    expect(chunks).toBeGreaterThanOrEqual(2);
    await expectCancelledRequests(server, 'tiny', before + 1);
  });

  it('answers bad requests with OpenAI errors naming the field', async () => {
    const error = async (request: Promise<unknown>) => request.then(() => undefined, (e: unknown) => e as InstanceType<typeof OpenAI.APIError>);
    const n = await error(openai.completions.create({ model: 'tiny', prompt, n: 2 }));
    expect(n).toBeInstanceOf(OpenAI.BadRequestError);
    expect(n?.param).toBe('n');
    const temperature = await error(openai.completions.create({ model: 'tiny', prompt, temperature: 3 }));
    expect(temperature?.status).toBe(400);
    expect(temperature?.param).toBe('temperature');
    const unknown = await error(openai.completions.create({ model: 'nope', prompt }));
    expect(unknown).toBeInstanceOf(OpenAI.NotFoundError);
    const noTemplate = await error(openai.chat.completions.create({ model: 'tiny_unary', messages: [{ role: 'user', content: 'hi' }] }));
    expect(noTemplate?.status).toBe(400);
    expect(noTemplate?.code).toBe('chat_template_missing');
    expect(noTemplate?.message).toMatch(/--chat-template/);
    const refused = await error(openai.completions.create({ model: 'tiny', prompt: 'x'.repeat(100_000), max_tokens: 4 }));
    expect(refused?.status).toBe(400);
  });

  it('checks the API key when it has one', async () => {
    const guarded = createOpenAiGateway({ triton: server.address, apiKey: 'secret' });
    const port = await guarded.listen(0);
    try {
      const wrong = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'wrong', maxRetries: 0 });
      await expect(wrong.models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
      const right = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'secret', maxRetries: 0 });
      expect((await right.models.list()).data.length).toBe(2);
    } finally {
      await guarded.close();
    }
  });
});

describe('chat templates', () => {
  it('renders a tokenizer_config.json template to the exact prompt, special tokens included', () => {
    const template = chatTemplateFromConfig({ bos_token: { content: '<s>' }, eos_token: '</s>', chat_template: llama2Template }, 'test');
    expect(template).toBeInstanceOf(ChatTemplate);
    expect(template!.render([
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: ' First question? ' },
      { role: 'assistant', content: 'First answer.' },
      { role: 'user', content: 'Second question?' },
    ])).toBe('<s>[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nFirst question? [/INST] First answer. </s><s>[INST] Second question? [/INST]');
  });

  it('finds no template where the config has none, and reports one that does not parse', () => {
    expect(chatTemplateFromConfig({ bos_token: '<s>' }, 'plain')).toBeUndefined();
    expect(() => chatTemplateFromConfig({ chat_template: '{% if %}' }, 'broken.json')).toThrow(/broken\.json/);
  });
});
