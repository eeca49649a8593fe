// Spans a translation must not change (URLs, e-mail addresses, file paths, format placeholders,
// markup entities). Most are replaced by a numbered mask `{N}` before translation and put back
// after. C format placeholders (`%s`, `%1$d`) stay as they are: the model saw them copied through
// thousands of gettext messages and keeps more of them in place than it keeps masks; Python's
// `%(name)s` it keeps in place far less often than a mask, so those are masked
// (scripts/text-preservation.ts measures both). Either way, what the model dropped is
// put back at the end of its sentence and what it repeated is kept once, so every span comes out
// exactly as it went in.

export type SpanKind =
  'url' | 'email' | 'path' | 'printf' | 'python' | 'named' | 'brace' | 'template' | 'entity' | 'atomic' | 'marker';

export interface Span {
  kind: SpanKind;
  text: string;
}

export interface Masked {
  /** The text with every masked span replaced by its mask; placeholders left in place. */
  text: string;
  /** The masked spans: mask N stands for spans[N]. */
  spans: Span[];
  /** The placeholders left in the text, in source order. */
  placeholders: Span[];
}

const PYTHON = /%\([\w.-]+\)[-+#0]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]/gu;
const PRINTF =
  /%(?:\d+\$)?[-+#0']*(?:\d+|\*)?(?:\.(?:\d+|\*))?(?:hh|h|ll|l|L|q|j|z|t|I64|I32|I)?[diouxXeEfFgGaAcspn]|%%/gu;
/** Placeholders in a translation: the kinds left in place. */
const PLACEHOLDER = new RegExp(`${PYTHON.source}|${PRINTF.source}`, 'gu');
const IN_PLACE = new Set<SpanKind>(['printf']);

// Order matters: earlier kinds win where matches overlap (a URL holds a path; `%(name)s` holds `%`).
const PATTERNS: Array<[SpanKind, RegExp]> = [
  // A URL may hold balanced parentheses (`wiki/Foo_(bar)`) but does not end in punctuation or a closing one of the text's.
  [
    'url',
    /\b(?:(?:https?|ftp|file):\/\/|www\.)(?:[^\s<>"'`()]|\([^\s<>"'`()]*\))*(?:[^\s<>"'`.,;:!?()\]}]|\([^\s<>"'`()]*\))/giu,
  ],
  ['email', /[\p{L}\p{N}._%+-]+@[\p{L}\p{N}-]+(?:\.[\p{L}\p{N}-]+)+/gu],
  ['template', /\$\{[^{}\s]+\}|\{\{[^{}]+\}\}|\$\([\w.]+\)|%\{[\w.]+\}/gu],
  ['python', PYTHON],
  ['printf', PRINTF],
  // LibreOffice's and Qt's %PRODUCTNAME, %1: the model does not know them.
  ['named', /%[A-Z][A-Z0-9_]+%?|%\d+(?![$\w])/gu],
  ['brace', /\{[\w.:!#<>^+-]*\}/gu],
  ['entity', /&(?:#\d+|#x[0-9a-f]+|[a-z][a-z0-9]*);/giu],
  // Absolute, home- or dot-relative paths with at least one directory, and Windows drive paths
  // (spaces only inside directory names); never ending in the sentence's period.
  [
    'path',
    /(?<![\p{L}\p{N}/.~])(?:~|\.{1,2})?\/(?:[\w.+@-]+\/)*[\w.+@-]*[\w+@-]\/?|\b[A-Za-z]:\\(?:[\w .-]+\\)*[\w.-]*\w/gu,
  ],
];

/** The mask of span i, and the patterns that find masks (the loose one tolerates spaces the model adds). */
const maskOf = (i: number) => `{${i}}`;
const MASK = /\{(\d+)\}/g;
const LOOSE_MASK = /( ?)\{\s*(\d+)\s*\}/g;
const indexOf = (n: string) => Number(n);

/** A range of a text the caller protects: masked whole, as `kind` (default 'atomic'). */
export type Protected = [start: number, end: number, kind?: SpanKind];

/** Finds the spans of `text` (plus any ranges the caller protects) and masks them. */
export function mask(text: string, atomic: Protected[] = []): Masked {
  const taken: Array<[number, number, SpanKind]> = atomic.map(([s, e, kind]) => [s, e, kind ?? 'atomic']);
  for (const [kind, re] of PATTERNS) {
    for (const m of text.matchAll(re)) {
      const start = m.index!;
      const end = start + m[0].length;
      if (kind === 'path' && !isPath(m[0])) continue;
      if (taken.some(([s, e]) => start < e && end > s)) continue;
      taken.push([start, end, kind]);
    }
  }
  taken.sort((a, b) => a[0] - b[0]);
  const spans: Span[] = [];
  const placeholders: Span[] = [];
  let out = '';
  let pos = 0;
  for (const [start, end, kind] of taken) {
    const span = { kind, text: text.slice(start, end) };
    if (IN_PLACE.has(kind)) {
      out += text.slice(pos, end);
      placeholders.push(span);
    } else {
      out += text.slice(pos, start) + maskOf(spans.length);
      spans.push(span);
    }
    pos = end;
  }
  return { text: out + text.slice(pos), spans, placeholders };
}

/** A slash run is a path when it has a directory or names a well-known root (`/etc`, `/tmp`). */
function isPath(s: string): boolean {
  if (/^[A-Za-z]:\\/.test(s)) return true;
  const parts = s.split('/').filter(Boolean);
  return (
    parts.length >= 2 ||
    s.startsWith('~') ||
    s.startsWith('.') ||
    /^\/(?:etc|tmp|usr|var|home|dev|proc|opt|srv|bin|sbin|lib|root|boot|mnt|media|run|sys)\/?$/.test(s)
  );
}

/**
 * A sentence's translation with exactly the masks and placeholders of its (masked) source: what the
 * model dropped goes at the end (before final punctuation); repeats, and masks of other sentences,
 * are dropped.
 */
export function repair(translated: string, source: string): string {
  const want = new Set(maskIds(source));
  const seen = new Set<number>();
  let text = translated.replace(LOOSE_MASK, (_whole, space: string, n: string) => {
    const i = indexOf(n);
    if (!want.has(i) || seen.has(i)) return '';
    seen.add(i);
    return space + maskOf(i);
  });
  const left = countOf(placeholdersIn(source));
  text = text.replace(new RegExp(` ?(?:${PLACEHOLDER.source})`, 'gu'), (whole) => {
    const p = whole.trimStart();
    if ((left.get(p) ?? 0) === 0) return '';
    left.set(p, left.get(p)! - 1);
    return whole;
  });
  text = dropBrokenPercents(text, source);
  const missing = [
    ...maskIds(source)
      .filter((i) => !seen.has(i))
      .map(maskOf),
    ...[...left].flatMap(([p, n]) => Array<string>(n).fill(p)),
  ];
  if (missing.length > 0) {
    const tail = /[\s.!?。！？:;…]*$/.exec(text)![0];
    const body = text.slice(0, text.length - tail.length);
    text = body + (body === '' || /\s$/.test(body) ? '' : ' ') + missing.join(' ') + tail;
  }
  return text;
}

/**
 * Removes `%` fragments the model made that are no placeholder (`%(url)` without its conversion,
 * a stray `%`) beyond as many bare `%` as the source has: format checkers reject them.
 */
function dropBrokenPercents(text: string, source: string): string {
  const bare = (t: string) => t.replace(PLACEHOLDER, '').split('%').length - 1;
  let allowed = bare(source);
  if (bare(text) <= allowed) return text;
  const valid = new RegExp(`^(?:${PLACEHOLDER.source})`, 'u');
  let out = '';
  let pos = 0;
  for (const m of text.matchAll(/%(?:\([^)\s]*\)?)?/g)) {
    if (m.index! < pos) continue;
    const rest = text.slice(m.index!);
    const placeholder = valid.exec(rest);
    if (placeholder !== null) {
      out += text.slice(pos, m.index! + placeholder[0].length);
      pos = m.index! + placeholder[0].length;
    } else if (allowed > 0 && m[0] === '%') {
      allowed--;
      out += text.slice(pos, m.index! + 1);
      pos = m.index! + 1;
    } else {
      out += text.slice(pos, m.index!).replace(/ $/, '');
      pos = m.index! + m[0].length;
    }
  }
  return out + text.slice(pos);
}

/** The mask numbers in a masked text, in order. */
export function maskIds(text: string): number[] {
  return [...text.matchAll(MASK)].map((m) => indexOf(m[1]));
}

/** The placeholders (left in place) of a text, in order. */
export function placeholdersIn(text: string): string[] {
  return [...text.matchAll(PLACEHOLDER)].map((m) => m[0]);
}

function countOf(xs: string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const x of xs) m.set(x, (m.get(x) ?? 0) + 1);
  return m;
}

/**
 * Puts the spans back in place of their masks. Unnumbered printf placeholders (`%s`, `%d`) keep
 * their source order, since their order is their meaning (and `msgfmt -c` checks it).
 */
export function unmask(text: string, masked: Pick<Masked, 'spans' | 'placeholders'>): string {
  const sequential = masked.placeholders.filter(isSequential).map((p) => p.text);
  let k = 0;
  const ordered =
    sequential.length < 2
      ? text
      : text.replace(PLACEHOLDER, (p) =>
          isSequential({ kind: 'printf', text: p }) && k < sequential.length ? sequential[k++] : p,
        );
  if (masked.spans.length === 0) return ordered;
  return ordered.replace(MASK, (whole, n: string) => {
    const i = indexOf(n);
    return i < masked.spans.length ? masked.spans[i].text : whole;
  });
}

function isSequential(s: Span): boolean {
  return s.kind === 'printf' && s.text !== '%%' && !/^%\d+\$/.test(s.text);
}

/** Which spans came back unchanged in a translation: the fraction kept, by kind. */
export function preserved(source: Span[], translation: string): { kept: number; total: number } {
  let rest = translation;
  let kept = 0;
  for (const s of source) {
    const at = rest.indexOf(s.text);
    if (at >= 0) {
      kept++;
      rest = rest.slice(0, at) + rest.slice(at + s.text.length);
    }
  }
  return { kept, total: source.length };
}
