import { initBackend } from '../../src/backend/index.ts';

/** Tests run on wasm: the backend CI and development machines have. */
export async function useTestBackend(): Promise<void> {
  await initBackend({ force: 'wasm', log: () => {} });
}
