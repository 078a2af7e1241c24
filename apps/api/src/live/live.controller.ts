import { Controller, HttpCode, Post } from '@nestjs/common';
import { liveTicketSchema } from '@pipedec/contracts';
import { Auth } from '../auth/auth-policy.js';
import { CurrentAdmin, type AdminPrincipal } from '../auth/principal.js';
import { ApiDoc } from '../openapi/route-doc.js';
import { LiveTickets } from './live-tickets.service.js';

@Controller('admin/live')
export class LiveController {
  constructor(private readonly tickets: LiveTickets) {}

  @Post('tickets')
  @HttpCode(201)
  @Auth.admin('viewer')
  @ApiDoc({
    summary:
      'A one-use ticket (30 s) for the socket.io namespace /admin/live, which pushes the pipelines snapshot every second',
    response: liveTicketSchema,
  })
  issue(@CurrentAdmin() admin: AdminPrincipal) {
    return this.tickets.issue(admin);
  }
}
