import { Controller, Get } from '@nestjs/common';
import { Auth } from '../auth/auth-policy.js';
import { openApiDocument } from './openapi-document.js';

@Controller()
export class OpenApiController {
  private readonly document = openApiDocument('0.1.0');

  @Get('openapi.json')
  @Auth.public()
  get() {
    return this.document;
  }
}
