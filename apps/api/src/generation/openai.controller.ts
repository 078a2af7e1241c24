import { Controller, Get, HttpCode, Post, Res } from '@nestjs/common';
import {
  chatCompletionRequestSchema,
  completionRequestSchema,
  type ChatCompletionRequest,
  type CompletionRequest,
} from '@pipedec/contracts';
import type { Response } from 'express';
import { Auth } from '../auth/auth-policy.js';
import { CurrentTenant, type TenantPrincipal } from '../auth/principal.js';
import { ValidBody } from '../common/route-inputs.js';
import { ApiDoc } from '../openapi/route-doc.js';
import { GenerationRelay } from './generation-relay.js';
import { commonParams, GenerationService, type GenerationParams } from './generation.service.js';
import { IdempotencyKey, type IdempotencyRequest } from './idempotency.js';

/** OpenAI-compatible endpoints; the official `openai` client works against them. */
@Controller('v1')
export class OpenAiController {
  constructor(
    private readonly generation: GenerationService,
    private readonly relay: GenerationRelay,
  ) {}

  @Get('models')
  @Auth.apiKey('generate')
  @ApiDoc({ summary: 'Models served' })
  models() {
    return this.relay.models();
  }

  @Post('completions')
  @HttpCode(200)
  @Auth.apiKey('generate')
  @ApiDoc({
    summary: 'OpenAI-compatible completion (stream: SSE)',
    produces: ['application/json', 'text/event-stream'],
    errors: [409, 429, 503],
  })
  async completions(
    @CurrentTenant() tenant: TenantPrincipal,
    @ValidBody(completionRequestSchema) req: CompletionRequest,
    @IdempotencyKey() key: string | undefined,
    @Res() res: Response,
  ): Promise<void> {
    const prompt = typeof req.prompt === 'string' ? req.prompt : req.prompt[0];
    await this.run(
      tenant,
      req,
      { ...commonParams(req), prompt: { text: prompt }, promptParam: 'prompt' },
      'completion',
      res,
      key ? { key, route: 'completions' } : undefined,
    );
  }

  @Post('chat/completions')
  @HttpCode(200)
  @Auth.apiKey('generate')
  @ApiDoc({
    summary: 'OpenAI-compatible chat completion (stream: SSE)',
    produces: ['application/json', 'text/event-stream'],
    errors: [409, 429, 503],
  })
  async chat(
    @CurrentTenant() tenant: TenantPrincipal,
    @ValidBody(chatCompletionRequestSchema) req: ChatCompletionRequest,
    @IdempotencyKey() key: string | undefined,
    @Res() res: Response,
  ): Promise<void> {
    const params: GenerationParams = {
      ...commonParams(req),
      maxTokens: req.max_completion_tokens ?? req.max_tokens,
      prompt: { messages: req.messages.map((m) => ({ role: m.role, content: m.content })) },
      promptParam: 'messages',
    };
    await this.run(
      tenant,
      req,
      params,
      'chat',
      res,
      key ? { key, route: 'chat.completions' } : undefined,
    );
  }

  private async run(
    tenant: TenantPrincipal,
    req: CompletionRequest | ChatCompletionRequest,
    params: GenerationParams,
    kind: 'completion' | 'chat',
    res: Response,
    idem?: IdempotencyRequest,
  ): Promise<void> {
    // A retry may ask for the same request streamed or whole: both render its one result.
    const keepRunning = req.keep_running ?? false;
    const admitted = await this.generation.submit(tenant, params, idem, {
      cancelWithClient: !keepRunning,
    });
    const opts = {
      kind,
      model: req.model,
      includeUsage: req.stream_options?.include_usage ?? false,
      keepRunning,
    };
    if (req.stream) await this.relay.stream(tenant, admitted, opts, res);
    else await this.relay.whole(tenant, admitted, opts, res);
  }
}
