#!/usr/bin/env node
// npm run openai -- --triton localhost:8001 --port 9000: serves the OpenAI API in front of a Triton.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ChatTemplate, chatTemplateFromConfig } from './chat-template.js';
import { createOpenAiGateway } from './gateway.js';

const usage = `Usage: npm run openai -- --triton HOST:PORT [--port N] [--host ADDR] [--api-key KEY]
                          [--chat-template FILE] [--cors-origin ORIGIN]... [--default-max-tokens N]

  --triton HOST:PORT      Triton's gRPC endpoint (default localhost:8001)
  --port N                port to listen on (default 9000; 0 picks a free one, printed at startup)
  --host ADDR             address to listen on (default 127.0.0.1)
  --api-key KEY           require "Authorization: Bearer KEY" (or set TRITON_LLM_OPENAI_API_KEY)
  --chat-template FILE    a Jinja chat template (or a tokenizer_config.json holding one) for every
                          model, instead of each model's tokenizer_config.json
  --cors-origin ORIGIN    allow browser calls from ORIGIN ("*" for any); repeatable
  --default-max-tokens N  max_tokens of requests that give none (default 256)`;

function fail(message: string): never {
  process.stderr.write(`openai gateway: ${message}\n\n${usage}\n`);
  process.exit(2);
}

let values;
try {
  ({ values } = parseArgs({
    options: {
      triton: { type: 'string', default: 'localhost:8001' },
      port: { type: 'string', default: '9000' },
      host: { type: 'string', default: '127.0.0.1' },
      'api-key': { type: 'string' },
      'chat-template': { type: 'string' },
      'cors-origin': { type: 'string', multiple: true },
      'default-max-tokens': { type: 'string', default: '256' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  }));
} catch (error) {
  fail((error as Error).message);
}
if (values.help) {
  process.stdout.write(`${usage}\n`);
  process.exit(0);
}
const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`--port must be a port number, got '${values.port}'`);
const defaultMaxTokens = Number(values['default-max-tokens']);
if (!Number.isInteger(defaultMaxTokens) || defaultMaxTokens < 1) fail(`--default-max-tokens must be an integer >= 1`);

let chatTemplate: ChatTemplate | undefined;
const templateFile = values['chat-template'];
if (templateFile !== undefined) {
  let text: string;
  try {
    text = readFileSync(templateFile, 'utf8');
  } catch (error) {
    fail(`cannot read --chat-template ${templateFile}: ${(error as Error).message}`);
  }
  try {
    // A tokenizer_config.json, or the template itself.
    chatTemplate = templateFile.endsWith('.json') ? chatTemplateFromConfig(JSON.parse(text), templateFile) : new ChatTemplate(text);
  } catch (error) {
    fail(`--chat-template ${templateFile}: ${(error as Error).message}`);
  }
  if (!chatTemplate) fail(`--chat-template ${templateFile} has no chat_template`);
}

const gateway = createOpenAiGateway({
  triton: values.triton,
  apiKey: values['api-key'] ?? process.env['TRITON_LLM_OPENAI_API_KEY'],
  corsOrigins: values['cors-origin'],
  chatTemplate,
  defaultMaxTokens,
});
try {
  const bound = await gateway.listen(port, values.host);
  process.stdout.write(`openai gateway: serving http://${values.host}:${bound}/v1 for Triton at ${values.triton}\n`);
} catch (error) {
  fail(`cannot listen on ${values.host}:${port}: ${(error as Error).message}`);
}
const stop = (): void => {
  gateway.close().then(() => process.exit(0), () => process.exit(1));
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
