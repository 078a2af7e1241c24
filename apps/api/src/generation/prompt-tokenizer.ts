import { Inject, Injectable, Logger } from '@nestjs/common';
import { loadTokenizer, type ChatMessage, type LoadedTokenizer } from '@pipedec/model/tokenizer';
import { Errors } from '../common/errors.js';
import { API_CONFIG, type ApiConfig } from '../config/api-config.js';

/**
 * The served model's tokenizer (MODEL_DIR/tokenizer.json). The API tokenizes every prompt
 * itself: the count is what quotas reserve and bills charge, and the job carries the ids, so
 * the head runs exactly what was counted.
 */
@Injectable()
export class PromptTokenizer {
  private readonly logger = new Logger('PromptTokenizer');
  private loading?: Promise<LoadedTokenizer>;

  constructor(@Inject(API_CONFIG) private readonly config: ApiConfig) {}

  private tokenizer(): Promise<LoadedTokenizer> {
    this.loading ??= loadTokenizer(this.config.MODEL_DIR).catch((e: unknown) => {
      this.loading = undefined;
      this.logger.error(`cannot load the tokenizer of ${this.config.MODEL_DIR}: ${String(e)}`);
      throw Errors.unavailable(
        'model_unavailable',
        `The tokenizer of model ${this.config.MODEL_NAME} is not available`,
      );
    });
    return this.loading;
  }

  async encode(text: string): Promise<number[]> {
    return (await this.tokenizer()).encode(text);
  }

  async encodeChat(messages: readonly ChatMessage[]): Promise<number[]> {
    return (await this.tokenizer()).encodeChat(messages, { addGenerationPrompt: true });
  }
}
