// The routing study's five models (docs/routing-study.md): their run directories under
// runs/routing-study/, labels, the paper's figures and colours, shared by scripts/routing-plot.ts
// and scripts/routing-bootstrap.ts.

export interface Kind {
  kind: string;
  label: string;
  /** The paper's average BLEU over its 30 WMT directions (paper-notes.md); none for Sentence/Target. */
  paperBleu?: number;
  /** The engine benchmark's cell with this routing's serving shape: [config, variant]. */
  bench: [string, string];
  color: string;
}

export const KINDS: Kind[] = [
  { kind: 'dense', label: 'dense', paperBleu: 20.0, bench: ['study128-dense', 'dense'], color: '#888888' },
  { kind: 'token-token', label: 'Token/Token', paperBleu: 22.6, bench: ['study128', 'token'], color: '#d95f02' },
  {
    kind: 'token-target',
    label: 'Token/Target',
    paperBleu: 23.6,
    bench: ['study128', 'task-extracted'],
    color: '#1b9e77',
  },
  { kind: 'token-pair', label: 'Token/Pair', paperBleu: 23.0, bench: ['study128', 'task-extracted'], color: '#7570b3' },
  { kind: 'sentence-target', label: 'Sentence/Target', bench: ['study128', 'task-extracted'], color: '#e7298a' },
];
