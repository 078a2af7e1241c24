import { Module } from '@nestjs/common';
import { ApiKeysModule } from '../api-keys/api-keys.module.js';
import { HealthModule } from '../health/health.module.js';
import { QuotasModule } from '../quotas/quotas.module.js';
import { TenantsModule } from '../tenants/tenants.module.js';
import { AccountingSweeper } from './accounting-sweeper.js';
import { AccountingService } from './accounting.service.js';
import { AdminPlaygroundController } from './admin-playground.controller.js';
import { AdminRequestsController } from './admin-requests.controller.js';
import { EventReader } from './event-reader.js';
import { FairScheduler } from './fair-scheduler.js';
import { GenerationRelay } from './generation-relay.js';
import { GenerationService } from './generation.service.js';
import { IdempotencyStore } from './idempotency.js';
import { JobsController } from './jobs.controller.js';
import { OpenAiController } from './openai.controller.js';
import { PipelineGate } from './pipeline-gate.js';
import { PromptTokenizer } from './prompt-tokenizer.js';
import { RelayHeartbeat } from './relay-heartbeat.js';
import { RequestsRepository } from './requests.repository.js';
import { RequestsService } from './requests.service.js';
import { ReservationService } from './reservation.service.js';
import { StreamGateway } from './stream.gateway.js';
import { StreamMux } from './stream-mux.js';

@Module({
  imports: [TenantsModule, QuotasModule, ApiKeysModule, HealthModule],
  controllers: [
    OpenAiController,
    JobsController,
    AdminPlaygroundController,
    AdminRequestsController,
  ],
  providers: [
    AccountingService,
    AccountingSweeper,
    EventReader,
    FairScheduler,
    GenerationRelay,
    GenerationService,
    IdempotencyStore,
    PipelineGate,
    PromptTokenizer,
    RelayHeartbeat,
    RequestsRepository,
    RequestsService,
    ReservationService,
    StreamGateway,
    StreamMux,
  ],
  exports: [FairScheduler, GenerationService, EventReader, RequestsRepository],
})
export class GenerationModule {}
