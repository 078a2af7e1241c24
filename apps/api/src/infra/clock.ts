import { Injectable } from '@nestjs/common';

/** Time, behind a class so tests can move it. */
@Injectable()
export class Clock {
  now(): Date {
    return new Date();
  }
  nowMs(): number {
    return Date.now();
  }
}
