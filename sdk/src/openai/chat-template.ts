// Chat templates: a model's own `chat_template` (Hugging Face tokenizer_config.json), rendered
// with @huggingface/jinja, the Jinja implementation transformers.js uses.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';

/** One chat message with its content as plain text. */
export interface ChatTemplateMessage {
  role: string;
  content: string;
  name?: string | undefined;
}

/** A parsed template with the special tokens its tokenizer_config.json names. */
export class ChatTemplate {
  private readonly template: Template;

  /** `source` is the Jinja text; throws with Jinja's message when it does not parse. */
  constructor(
    readonly source: string,
    readonly bosToken = '',
    readonly eosToken = '',
  ) {
    this.template = new Template(source);
  }

  /** The prompt for `messages`, ending with the assistant turn's opening when `addGenerationPrompt`. */
  render(messages: readonly ChatTemplateMessage[], addGenerationPrompt = true): string {
    return this.template.render({
      messages: messages.map((m) => ({ ...m })),
      bos_token: this.bosToken,
      eos_token: this.eosToken,
      add_generation_prompt: addGenerationPrompt,
    });
  }
}

/** A special token as tokenizer_config.json writes it: a string or `{ "content": ... }`. */
function tokenText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value !== null && typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string') {
    return (value as { content: string }).content;
  }
  return '';
}

/**
 * The chat template of a tokenizer_config.json: `chat_template` as a string, or the entry named
 * "default" of a list of `{ name, template }`. Undefined when the file has none; throws when the
 * file is not JSON or the template does not parse.
 */
export function chatTemplateFromConfig(config: unknown, origin: string): ChatTemplate | undefined {
  if (config === null || typeof config !== 'object') throw new Error(`${origin} is not a JSON object`);
  const record = config as Record<string, unknown>;
  let source: unknown = record['chat_template'];
  if (Array.isArray(source)) {
    const named = source as { name?: unknown; template?: unknown }[];
    source = (named.find((t) => t.name === 'default') ?? named[0])?.template;
  }
  if (typeof source !== 'string' || source === '') return undefined;
  try {
    return new ChatTemplate(source, tokenText(record['bos_token']), tokenText(record['eos_token']));
  } catch (error) {
    throw new Error(`the chat_template of ${origin} does not parse: ${(error as Error).message}`);
  }
}

/** Reads `<dir>/tokenizer_config.json` for the first directory that has one with a chat template. */
export async function loadChatTemplate(directories: readonly string[]): Promise<ChatTemplate | undefined> {
  for (const directory of directories) {
    const path = join(directory, 'tokenizer_config.json');
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch {
      continue;  // not on this machine, or no such file: try the next folder
    }
    let config: unknown;
    try {
      config = JSON.parse(text);
    } catch (error) {
      throw new Error(`${path} is not valid JSON: ${(error as Error).message}`);
    }
    const template = chatTemplateFromConfig(config, path);
    if (template) return template;
  }
  return undefined;
}
