// A tiny parallel corpus and training config for the trainer's tests.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ModelConfig } from '../../src/models/config.ts';
import { FIXTURE_TOKENIZER, tempDir, tinyConfig } from './engine.ts';

export const ENGLISH = [
  'Open the file',
  'Save the file',
  'Close the window',
  'Print the document',
  'Delete the file',
  'Open a new window',
  'Save all files',
  'Quit the program',
];
export const GERMAN = [
  'Datei öffnen',
  'Datei speichern',
  'Fenster schließen',
  'Dokument drucken',
  'Datei löschen',
  'Neues Fenster öffnen',
  'Alle Dateien speichern',
  'Programm beenden',
];
export const FRENCH = [
  'Ouvrir le fichier',
  'Enregistrer le fichier',
  'Fermer la fenêtre',
  'Imprimer le document',
  'Supprimer le fichier',
  'Ouvrir une nouvelle fenêtre',
  'Enregistrer tous les fichiers',
  'Quitter le programme',
];

/** A corpus dir with en-de.tsv and en-fr.tsv, and a training config (token-routed encoder, target-routed decoder) next to it. */
export function setUpTraining(
  train: Record<string, unknown> = {},
  modelOverrides: Partial<ModelConfig> = {},
): { config: string; data: string; out: string } {
  const root = tempDir('taskmoe-train-');
  const data = path.join(root, 'data');
  fs.mkdirSync(data);
  fs.writeFileSync(path.join(data, 'en-de.tsv'), ENGLISH.map((e, i) => `${e}\t${GERMAN[i]}\n`).join(''));
  fs.writeFileSync(path.join(data, 'en-fr.tsv'), ENGLISH.map((e, i) => `${e}\t${FRENCH[i]}\n`).join(''));
  const model = tinyConfig('token', 'target', {
    languages: ['en', 'de', 'fr'],
    pairs: ['en-de', 'de-en', 'en-fr', 'fr-en'],
    maxLength: 24,
    ...modelOverrides,
  });
  const config = path.join(root, 'train.json');
  const settings = {
    tokenizer: FIXTURE_TOKENIZER,
    batchTokens: 96,
    peakLr: 3e-3,
    warmupSteps: 5,
    logEvery: 1000,
    evalEvery: 0,
    saveEvery: 0,
    ...train,
  };
  fs.writeFileSync(config, JSON.stringify({ ...model, train: settings }));
  return { config, data, out: path.join(root, 'out') };
}
