// Translated files waiting for download: held in memory (never on disk, so no request can name a
// path), each for a limited time, all within a byte budget (oldest dropped first).
import { randomUUID } from 'node:crypto';
import { LRUCache } from 'lru-cache';

export interface StoredFile {
  /** The name a browser saves it as. */
  filename: string;
  contentType: string;
  data: Buffer;
}

/** Names the store hands out: a UUID and the file's extension. */
export const STORED_NAME = '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\\.(txt|html|po)$';

export class FileStore {
  private readonly files: LRUCache<string, StoredFile>;

  constructor(
    readonly ttlMs: number,
    readonly maxBytes: number,
  ) {
    this.files = new LRUCache<string, StoredFile>({
      ttl: ttlMs,
      maxSize: maxBytes,
      sizeCalculation: (f) => Math.max(1, f.data.length),
      ttlAutopurge: true,
    });
  }

  /** Stores a file and returns its name; a file over the whole budget is refused. */
  put(file: StoredFile, extension: string): string {
    if (file.data.length > this.maxBytes)
      throw new Error(
        `translated file of ${file.data.length} bytes exceeds the download store of ${this.maxBytes} bytes`,
      );
    const name = `${randomUUID()}.${extension}`;
    this.files.set(name, file);
    return name;
  }

  get(name: string): StoredFile | undefined {
    return new RegExp(STORED_NAME).test(name) ? this.files.get(name) : undefined;
  }

  clear(): void {
    this.files.clear();
  }
}
