// The SDK's README examples as one runnable, type-checked file (`npm run typecheck` covers it;
// test/sdk/llm-server.test.ts runs it against the dev server).
//
//   npm run serve                                   # serves llama_fp16 on localhost:8001
//   npx tsx test/sdk/example.ts [URL] [MODEL]       # defaults: localhost:8001 llama_fp16
import { pathToFileURL } from 'node:url';
import {
  Status,
  TritonClient,
  TritonError,
  TritonLlmClient,
  type GenerateResult,
  type GenerationChunk,
  type InferInput,
} from '../../sdk/src/index.js';

/** generate(): the whole text, the finish reason, token usage and timings. */
export async function generateExample(llm: TritonLlmClient): Promise<GenerateResult> {
  const result = await llm.generate({ prompt: 'The capital of France is', maxTokens: 32, temperature: 0 });
  console.log(`${result.text} [${result.finishReason}, ${result.usage.completionTokens ?? '?'} tokens, ttft ${result.timings.ttftMs.toFixed(1)} ms]`);
  return result;
}

/** stream(): text deltas as they are generated, then the final result. */
export async function streamExample(llm: TritonLlmClient): Promise<string> {
  const stream = llm.stream({ prompt: 'Once upon a time', maxTokens: 48 });
  for await (const chunk of stream) process.stdout.write(chunk.text);
  const { text, timings } = await stream.result;
  process.stdout.write(`\n[${timings.totalMs.toFixed(0)} ms]\n`);
  return text;
}

/** Cancellation: abort the signal (or just `break`); the server stops generating. */
export async function cancelExample(llm: TritonLlmClient): Promise<GenerationChunk[]> {
  const controller = new AbortController();
  const received: GenerationChunk[] = [];
  try {
    for await (const chunk of llm.stream({ prompt: 'A very long story', maxTokens: 1000 }, { signal: controller.signal })) {
      received.push(chunk);
      if (received.length === 5) controller.abort(); // or: setTimeout(() => controller.abort(), 1000)
    }
  } catch (error) {
    if (!(error instanceof TritonError && error.cancelled)) throw error;
  }
  console.log(`cancelled after ${received.length} chunks`);
  return received;
}

/** Errors: one class with the gRPC status code, the server's message and the call. */
export async function errorExample(llm: TritonLlmClient): Promise<TritonError | undefined> {
  try {
    await llm.generate({ prompt: 'Hello', maxTokens: 0 }, { timeoutMs: 10_000 });
  } catch (error) {
    if (error instanceof TritonError) {
      console.log(`${error.codeName} from ${error.call}: ${error.details}`);
      if (error.code === Status.UNAVAILABLE) console.log('is the server running?');
      return error;
    }
    throw error;
  }
  return undefined;
}

/** The generic layer: any model of any Triton server, typed tensors in and out. */
export async function inferExample(client: TritonClient, model: string): Promise<string[]> {
  console.log(await client.serverReady(), (await client.modelMetadata(model)).inputs.map((i) => i.name));
  const batch = (await client.modelConfig(model)).maxBatchSize > 0;
  const inputs: InferInput[] = [
    { name: 'text_input', datatype: 'BYTES', shape: batch ? [1, 1] : [1], data: ['Hello'] },
    { name: 'max_tokens', datatype: 'INT32', shape: batch ? [1, 1] : [1], data: new Int32Array([8]) },
  ];
  const texts: string[] = [];
  // A decoupled (streaming) model answers through streamInfer(); others also through infer().
  for await (const response of client.streamInfer({ model, inputs, outputs: ['text_output'] })) {
    texts.push(...response.strings('text_output'));
  }
  console.log(texts.join(''));
  return texts;
}

/** Runs every example against one server and model. */
export async function main(url = 'localhost:8001', model = 'llama_fp16'): Promise<void> {
  const llm = new TritonLlmClient({ url, model, headers: { 'x-client': 'sdk-example' } });
  try {
    await generateExample(llm);
    await streamExample(llm);
    await cancelExample(llm);
    await errorExample(llm);
    await inferExample(llm, model);
  } finally {
    llm.close();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv[2], process.argv[3]).catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = 1;
  });
}
