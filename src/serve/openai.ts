// OpenAI's API shapes: the request bodies of /v1/completions and /v1/chat/completions (checked field by field, with
// errors that name the field), the response and stream-chunk objects, and the error body.
import { z } from 'zod';

/** An API error: HTTP status and OpenAI's error body. */
export class ApiError extends Error {
  readonly status: number;
  readonly param: string | null;
  readonly type: string;
  readonly code: string | null;
  constructor(status: number, message: string, param: string | null = null, code: string | null = null) {
    super(message);
    this.status = status;
    this.param = param;
    this.code = code;
    this.type = status === 401 ? 'authentication_error' : status === 404 ? 'not_found_error' : status === 429 ? 'rate_limit_error' : status >= 500 ? 'server_error' : 'invalid_request_error';
  }
  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

const sampling = {
  model: z.string(),
  max_tokens: z.number().int().min(1).optional(),
  max_completion_tokens: z.number().int().min(1).optional(),
  temperature: z.number().min(0).max(2).optional(),
  top_p: z.number().gt(0).max(1).optional(),
  top_k: z.number().int().min(0).optional(),
  stop: z.union([z.string(), z.array(z.string()).max(4)]).nullable().optional(),
  seed: z.number().int().nullable().optional(),
  n: z.literal(1).optional(),
  stream: z.boolean().optional(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullable().optional(),
  user: z.string().optional(),
};

export const CompletionRequest = z.looseObject({
  ...sampling,
  prompt: z.union([z.string(), z.array(z.number().int().min(0)).min(1)]),
});
export type CompletionRequest = z.infer<typeof CompletionRequest>;

const Message = z.looseObject({
  role: z.enum(['system', 'user', 'assistant', 'developer', 'tool']),
  content: z.union([z.string(), z.array(z.looseObject({ type: z.literal('text'), text: z.string() }))]),
});
export const ChatRequest = z.looseObject({ ...sampling, messages: z.array(Message).min(1) });
export type ChatRequest = z.infer<typeof ChatRequest>;

/** Parses a body with a schema; the first problem becomes a 400 naming the field. */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new ApiError(400, 'the request body must be a JSON object');
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  const i = r.error.issues[0]!;
  const field = i.path.join('.') || null;
  const what = i.code === 'invalid_value' || i.code === 'invalid_union' ? 'has an unsupported value' : i.message.replace(/^Invalid input: /, '');
  const got = i.path.reduce<unknown>((o, k) => (o !== null && typeof o === 'object' ? (o as Record<PropertyKey, unknown>)[k] : undefined), body);
  const n = field === 'n' ? ' (only n = 1 is served)' : '';
  throw new ApiError(400, `${field ?? 'body'}: ${what}${got === undefined ? ' (missing)' : `, got ${JSON.stringify(got)?.slice(0, 80)}`}${n}`, field);
}

export type FinishReason = 'stop' | 'length';

export interface Usage { prompt_tokens: number; completion_tokens: number; total_tokens: number }

export const usage = (prompt: number, completion: number): Usage => ({ prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion });

export function completionObject(id: string, model: string, created: number, text: string, finish: FinishReason | null, u: Usage | null, chunk: boolean): Record<string, unknown> {
  return { id, object: 'text_completion', created, model, choices: [{ index: 0, text, logprobs: null, finish_reason: finish }], ...(u ? { usage: u } : {}), ...(chunk ? {} : {}) };
}

export function chatObject(id: string, model: string, created: number, text: string, finish: FinishReason | null, u: Usage | null, chunk: boolean, first = false): Record<string, unknown> {
  if (!chunk) return { id, object: 'chat.completion', created, model, choices: [{ index: 0, message: { role: 'assistant', content: text }, logprobs: null, finish_reason: finish }], usage: u };
  const delta = first ? { role: 'assistant', content: text } : finish ? {} : { content: text };
  return { id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }], ...(u ? { usage: u } : {}) };
}
