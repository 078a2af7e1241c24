import { Controller, Get, Header, NotFoundException, Param, Res } from '@nestjs/common';
import type { Response } from 'express';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Auth } from '../auth/auth-policy.js';
import { DiscoveryService } from '@nestjs/core';
import { openApiDocument } from './openapi-document.js';
import { ApiDoc } from './route-doc.js';
import { declaredRoutes } from './routes.js';

/** swagger-ui-dist's folder (the interactive reference page's files, served as they ship). */
const SWAGGER_DIR = path.dirname(
  createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'),
);
const SWAGGER_FILES: Record<string, string> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
};

/** The page: Swagger UI on /openapi.json, no inline script (init.js below). */
const DOCS_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>PipeDec API reference</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
`;
const INIT_JS = `window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#swagger-ui', deepLinking: true });\n`;

@Controller()
export class OpenApiController {
  private document?: Record<string, unknown>;

  constructor(private readonly discovery: DiscoveryService) {}

  /** Built on first use: every controller is registered by then. */
  @Get('openapi.json')
  @Auth.public()
  @ApiDoc({ summary: 'This document (OpenAPI 3.1), generated from the routes the API serves' })
  get() {
    this.document ??= openApiDocument(declaredRoutes(this.discovery), '0.1.0');
    return this.document;
  }

  /** An interactive reference of every route in /openapi.json (Swagger UI). */
  @Get('docs')
  @Auth.public()
  @ApiDoc({
    summary: 'Interactive reference of this document (Swagger UI)',
    produces: ['text/html'],
  })
  @Header('content-type', 'text/html; charset=utf-8')
  docs() {
    return DOCS_HTML;
  }

  @Get('docs/:file')
  @Auth.public()
  @ApiDoc({
    summary: "The reference page's files (Swagger UI)",
    produces: ['text/css', 'text/javascript'],
    errors: [404],
  })
  asset(@Param('file') file: string, @Res() res: Response) {
    if (file === 'init.js') {
      res.type('text/javascript; charset=utf-8').send(INIT_JS);
      return;
    }
    const type = Object.hasOwn(SWAGGER_FILES, file) ? SWAGGER_FILES[file] : undefined;
    if (!type) throw new NotFoundException(`No such file: ${file}`);
    res.type(type).sendFile(path.join(SWAGGER_DIR, file));
  }
}
