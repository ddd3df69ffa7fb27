// @triton-llm/sdk/openai: an OpenAI-compatible API in front of any Triton, on the SDK.
export { createOpenAiGateway, type OpenAiGateway, type OpenAiGatewayOptions } from './gateway.js';
export { ChatTemplate, chatTemplateFromConfig, loadChatTemplate, type ChatTemplateMessage } from './chat-template.js';
