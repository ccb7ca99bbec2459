// Chat prompts: the model's own chat template (tokenizer_config.json `chat_template`, Jinja, rendered with
// @huggingface/jinja as transformers' apply_chat_template does, with add_generation_prompt), or a plain one for models
// without a template ("role: content" lines, then "assistant:").
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Template } from '@huggingface/jinja';

export interface ChatMessage { role: string; content: string | { type: 'text'; text: string }[] }

export interface ChatTemplate {
  /** renders messages to the prompt text, ending where the assistant's answer starts */
  render(messages: readonly ChatMessage[]): string;
  /** the template came from tokenizer_config.json (its text carries the special tokens, so no BOS is added) */
  fromModel: boolean;
}

const text = (c: ChatMessage['content']): string => (typeof c === 'string' ? c : c.map((p) => p.text).join(''));
const tokenString = (t: unknown): string => (typeof t === 'string' ? t : t !== null && typeof t === 'object' && typeof (t as { content?: unknown }).content === 'string' ? (t as { content: string }).content : '');

export const PLAIN_CHAT: ChatTemplate = {
  fromModel: false,
  render: (messages) => `${messages.map((m) => `${m.role}: ${text(m.content)}`).join('\n')}\nassistant:`,
};

/** The chat template of a model directory (its tokenizer_config.json), or the plain one; a broken template is an error naming the file. */
export function chatTemplateOf(dir: string): ChatTemplate {
  const f = path.join(dir, 'tokenizer_config.json');
  if (!existsSync(f)) return PLAIN_CHAT;
  const cfg = JSON.parse(readFileSync(f, 'utf8')) as { chat_template?: unknown; bos_token?: unknown; eos_token?: unknown };
  let src = cfg.chat_template;
  if (Array.isArray(src)) src = (src as { name?: string; template?: string }[]).find((t) => t.name === 'default')?.template;
  if (typeof src !== 'string' || src === '') return PLAIN_CHAT;
  let t: Template;
  try {
    t = new Template(src);
  } catch (e) {
    throw new Error(`${f}: chat_template does not parse (${e instanceof Error ? e.message : String(e)})`);
  }
  const specials = { bos_token: tokenString(cfg.bos_token), eos_token: tokenString(cfg.eos_token) };
  return {
    fromModel: true,
    render: (messages) => t.render({ messages: messages.map((m) => ({ role: m.role, content: text(m.content) })), add_generation_prompt: true, ...specials }),
  };
}
