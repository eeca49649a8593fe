// A worker thread that checkpoints the key database's WAL every `everyMs`: a checkpoint fsyncs the
// WAL and the database (1-20 ms each on a busy disk), and run by the server's own connection (SQLite's
// autocheckpoint, every ~1,000 commits) it stalled the event loop and every request in flight. The
// server's connection sets wal_autocheckpoint=0; this second connection does the work off that thread.
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

const { file, everyMs } = workerData as { file: string; everyMs: number };
const db = new Database(file);
db.pragma('synchronous = NORMAL');
// PASSIVE: never waits for readers or the writer; what it cannot copy now, the next one does.
const timer = setInterval(() => db.pragma('wal_checkpoint(PASSIVE)'), everyMs);
parentPort!.once('message', () => {
  clearInterval(timer);
  db.close();
  parentPort!.close();
});
