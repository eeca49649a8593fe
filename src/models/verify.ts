// Whole-checkpoint verification before a model serves: every shard against the SHA-256 its
// manifest records, every tensor free of NaN and infinities. A corrupt checkpoint must stop
// `serve` and `translate` at start, not answer empty translations with 200.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { CheckpointError, type CheckpointReader, MANIFEST_FILE } from './checkpoint.ts';

async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(fs.createReadStream(file), hash);
  return hash.digest('hex');
}

/**
 * Throws a CheckpointError naming the shard or tensor at fault. A checkpoint written before
 * checksums were recorded is accepted after a warning (its values are still checked).
 */
export async function verifyCheckpoint(reader: CheckpointReader, warn: (msg: string) => void): Promise<void> {
  const unchecked: string[] = [];
  for (const shard of reader.shardFiles) {
    if (shard.sha256 === undefined) {
      unchecked.push(shard.path);
      continue;
    }
    const actual = await sha256Of(path.join(reader.dir, shard.path));
    if (actual !== shard.sha256) {
      throw new CheckpointError(`checkpoint ${reader.dir}: shard ${shard.path} has SHA-256 ${actual}, but ${MANIFEST_FILE} records ${shard.sha256} (corrupt or modified shard)`);
    }
  }
  if (unchecked.length > 0) {
    warn(`warning: checkpoint ${reader.dir} records no SHA-256 for ${unchecked.join(', ')} (written before taskmoe recorded checksums); its shards are not verified. Rewrite it with \`taskmoe convert\` to add them.`);
  }
  for (const name of reader.shapes.keys()) await reader.checkFinite(name);
}
