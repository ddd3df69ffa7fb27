// What the AI SDK provider and the LangChain.js models share: the client they send through, the
// sampling conventions of the OpenAI gateway, and chat prompts rendered with a ChatTemplate.
import { TritonLlmClient, type GenerateOptions } from '../llm.js';
import type { TritonClientOptions } from '../client.js';
import type { ChatTemplate, ChatTemplateMessage } from '../openai/chat-template.js';

/** Where an adapter gets its client: an address (it makes the client) or a client of the caller's. */
export interface ClientSource {
  url?: TritonClientOptions['url'];
  client?: TritonLlmClient | undefined;
}

/** The client an adapter sends through, and whether it made it (then it is the one to close it). */
export function resolveClient(source: ClientSource, adapter: string): { client: TritonLlmClient; owned: boolean } {
  if (source.client !== undefined && source.url !== undefined) throw new Error(`${adapter}: give either url or client, not both`);
  if (source.client !== undefined) return { client: source.client, owned: false };
  if (source.url === undefined) throw new Error(`${adapter}: give url (Triton's gRPC address, host:port) or client (a TritonLlmClient)`);
  return { client: new TritonLlmClient({ url: source.url }), owned: true };
}

/** Sampling settings as chat APIs name them. */
export interface SamplingSettings {
  temperature?: number | undefined;
  topP?: number | undefined;
  topK?: number | undefined;
}

/**
 * Sets the sampling fields of `request` the way the OpenAI gateway does: temperature 0 (or none)
 * is greedy; above 0 it samples, which Triton's LLM models only do when top_p or top_k asks, so
 * top_p defaults to 1 (the whole distribution). Returns the settings greedy decoding leaves unused.
 */
export function applySampling(request: GenerateOptions, settings: SamplingSettings): ('topP' | 'topK')[] {
  const { temperature, topP, topK } = settings;
  if (temperature !== undefined && !(temperature >= 0)) throw new RangeError(`temperature must be a number >= 0 (got ${temperature})`);
  if (temperature === undefined || temperature === 0) {
    const unused: ('topP' | 'topK')[] = [];
    if (topP !== undefined) unused.push('topP');
    if (topK !== undefined) unused.push('topK');
    return unused;
  }
  request.temperature = temperature;
  request.topP = topP ?? 1;
  if (topK !== undefined) request.topK = topK;
  return [];
}

/** Sets the penalties that are given and not 0 (models that do not declare an input refuse it, even at its neutral value). */
export function applyPenalties(request: GenerateOptions, presencePenalty: number | undefined, frequencyPenalty: number | undefined): void {
  if (presencePenalty !== undefined && presencePenalty !== 0) request.presencePenalty = presencePenalty;
  if (frequencyPenalty !== undefined && frequencyPenalty !== 0) request.frequencyPenalty = frequencyPenalty;
}

/**
 * The prompt text for chat messages: rendered with the template when there is one (ending with
 * the assistant turn's opening); without one, only a lone user message has an obvious prompt, its
 * text. Undefined otherwise: the caller says how to give a template.
 */
export function chatPrompt(messages: readonly ChatTemplateMessage[], template: ChatTemplate | undefined): string | undefined {
  if (template) return template.render(messages, true);
  const [only] = messages;
  return messages.length === 1 && only?.role === 'user' ? only.content : undefined;
}

/** The roles of `messages`, for errors. */
export function rolesOf(messages: readonly { role: string }[]): string {
  return messages.map((m) => m.role).join(', ') || 'none';
}
