// A stage process whose supervisor saw it exit is dead now, but its registry entry would stay
// until it expires (REGISTRY_TTL_MS, 3 s), and for that long the API's admission gate counted
// its pipeline whole and admitted requests it could not serve (bench:faults: a request 500 ms
// after each kill was admitted every time). The supervisor removes the entry at once, as a
// stage that leaves deregisters (the pipeline's channel announces it, so the head pauses and
// the API's gate, which reads the registry at most 250 ms old, answers 503) - and only while
// the entry is still the dead process's: a restarted stage's new entry (another pid) stays.
import { registryChangedChannel, registryKey } from '@pipedec/contracts';
import type { Redis } from 'ioredis';
import type { ExitRecord, StageSupervisor } from './stage-supervisor.js';

/** KEYS: the entry. ARGV: the dead pid, the pipeline's channel, the stage index. */
const REMOVE_IF_PID_LUA = `
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local ok, e = pcall(cjson.decode, v)
if not ok or type(e) ~= 'table' or tonumber(e['pid']) ~= tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
`;

/** Removes stage `stageIndex`'s entry if process `pid` wrote it; says whether it did. */
export async function removeDeadStage(
  redis: Redis,
  prefix: string,
  pipelineId: string,
  stageIndex: number,
  pid: number,
): Promise<boolean> {
  const removed = (await redis.eval(
    REMOVE_IF_PID_LUA,
    1,
    registryKey(prefix, pipelineId, stageIndex),
    pid,
    registryChangedChannel(prefix, pipelineId),
    String(stageIndex),
  )) as number;
  return removed === 1;
}

/** Removes the entry of each stage process `supervisor` sees exit unasked (index = stage). */
export function reportDeadStages(
  supervisor: StageSupervisor,
  redis: Redis,
  prefix: string,
  pipelineId: string,
  log: (line: string) => void,
): void {
  supervisor.on('exit', (r: ExitRecord) => {
    removeDeadStage(redis, prefix, pipelineId, r.index, r.pid).then(
      (removed) => {
        if (removed) log(`${r.name} (pid ${r.pid}): its registry entry removed`);
      },
      (e: unknown) =>
        log(
          `${r.name} (pid ${r.pid}): registry entry not removed (${e instanceof Error ? e.message : String(e)}); it expires by itself`,
        ),
    );
  });
}
