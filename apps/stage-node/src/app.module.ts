// Wiring only: the stage node built at boot is handed to the controllers that expose it (gRPC
// for the data plane, HTTP for health).
import { Module, type DynamicModule } from '@nestjs/common';
import { StageGrpcController } from './grpc/stage.grpc-controller.js';
import { StageInbox } from './wire/stage-inbox.js';
import { HealthController } from './health/health.controller.js';
import { StageNode } from './node/stage-node.js';

@Module({})
export class AppModule {
  static forNode(node: StageNode): DynamicModule {
    return {
      module: AppModule,
      controllers: [StageGrpcController, HealthController],
      providers: [
        { provide: StageNode, useValue: node },
        { provide: StageInbox, useValue: node },
      ],
    };
  }
}
