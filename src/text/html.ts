// HTML through a sentence translator. parse5 (the WHATWG parser) finds the text; the output is the
// input with only text replaced, so every tag, attribute, entity and comment stays byte for byte.
// Each run of inline content (text, <b>, <a href>, <i>, ...) in a block is cut into sentences like
// any text, its inline tags written as bare markers (<b>...</b>) and masked ({N}), which the model
// carries around the words; markers at a sentence's edges are kept out of the model's sight. A
// sentence whose markers do not come back once each and in order is translated again as its
// pieces between tags (one more batched call for all such sentences), so tags never move or
// vanish. script, style, code, pre, textarea and anything marked translate="no" are left untouched.
import { type DefaultTreeAdapterTypes as T, parse, parseFragment } from 'parse5';
import {
  type Prepared,
  type TranslateSentences,
  finishMasked,
  needsModel,
  prepare,
  translatePrepared,
} from './pipeline.ts';
import { type TooLong, sentencesOf } from './segment.ts';
import { type Protected, maskIds, unmask } from './mask.ts';
import { ATOMIC, FATAL, INLINE, OPTIONAL_END, UNTOUCHED, VOID } from './html-elements.ts';

/** A malformed document: `line` is where the problem starts (1-based). */
export class MarkupError extends Error {
  /** A caller's mistake: HTTP layers answer it as a 400. */
  readonly statusCode = 400;
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(`line ${line}: ${message}`);
  }
}

type Node = T.ChildNode;
type Element = T.Element;

/** A run of inline content: its source range and the text (with markers) the model sees. */
interface Run {
  start: number;
  end: number;
  /** Raw start and end tags of the inline elements, in the order their markers appear. */
  elements: Array<{ tag: string; open: string; close: string }>;
  text: string;
  /** Ranges of `text` kept whole (void and untouched elements, comments). */
  atomic: Array<[number, number]>;
}

/** Translates html documents or fragments: all their sentences in one call, then one more for sentences whose markers broke. */
export async function translateHtml(
  htmls: string[],
  translate: TranslateSentences,
  tooLong?: TooLong,
  names?: string[],
): Promise<string[]> {
  const docs = htmls.map((html, i) => {
    try {
      return { html, runs: findRuns(html) };
    } catch (err) {
      // Which text of several is broken.
      if (err instanceof MarkupError && names !== undefined) err.message = `${names[i]}: ${err.message}`;
      throw err;
    }
  });
  const runs = docs.flatMap((d) => d.runs);
  // Tag markers go to the model as masks ({N}), which it carries far better than markup.
  const prepared = runs.map((r) => prepare(r.text, tooLong, [...r.atomic, ...markersOf(r)]));
  const sentences = prepared.map((p) => sentencesOf(p.pieces));
  const flat = await translateCores(
    prepared.flatMap((p, r) => sentences[r].map((text) => ({ prepared: p, text }))),
    translate,
  );
  let at = 0;
  const outs = sentences.map((ss) => flat.slice(at, (at += ss.length)));
  await retranslateBrokenSentences(prepared, outs, translate);
  const rebuilt = runs.map((r, i) => withTags(r, finishMasked(prepared[i], outs[i]), prepared[i]));
  // A safety net: a run whose tags still do not fit goes piece by piece as a whole.
  const broken = runs.map((_, i) => i).filter((i) => rebuilt[i] === undefined);
  if (broken.length > 0) {
    // Pieces between tags, one text each: no marker to lose.
    const pieces = broken.map((i) => piecesOf(runs[i]));
    const texts = pieces.flatMap((p) => p.filter((_, k) => k % 2 === 0));
    const prep = texts.map((t) => prepare(t.text, tooLong, t.atomic));
    const out = await translatePrepared(prep, translate, finishMasked);
    let at = 0;
    broken.forEach((i, b) => {
      rebuilt[i] = pieces[b]
        .map((p, k) => {
          if (k % 2 === 1) return p.text;
          const j = at++;
          return unmask(escapeText(out[j]), prep[j]);
        })
        .join('');
    });
  }
  let r = 0;
  return docs.map(({ html, runs: mine }) => {
    let out = '';
    let pos = 0;
    for (const run of mine) {
      out += html.slice(pos, run.start) + rebuilt[r++];
      pos = run.end;
    }
    return out + html.slice(pos);
  });
}

/** Parses `html`, throwing a MarkupError for broken markup, and returns its runs of translatable inline content. */
export function findRuns(html: string): Run[] {
  const errors: MarkupError[] = [];
  const options = {
    sourceCodeLocationInfo: true,
    onParseError: (e: { code: string; startLine: number }) =>
      FATAL.has(e.code) && errors.push(new MarkupError(e.startLine, e.code.replace(/-/g, ' '))),
  };
  const root = /^\s*(<!doctype|<html[\s>])/i.test(html) ? parse(html, options) : parseFragment(html, options);
  checkBalance(html, root, errors);
  if (errors.length > 0) throw errors.sort((a, b) => a.line - b.line)[0];
  const runs: Run[] = [];
  visit(html, root, runs);
  return runs;
}

function visit(html: string, parent: T.ParentNode, runs: Run[]): void {
  let group: Node[] = [];
  const flush = () => {
    if (group.some((n) => hasText(n))) runs.push(runOf(html, group));
    group = [];
  };
  for (const node of childrenOf(parent)) {
    if (isInlineContent(node)) {
      group.push(node);
      continue;
    }
    flush();
    if ('childNodes' in node && !untouched(node as Element)) visit(html, node as T.ParentNode, runs);
  }
  flush();
}

function childrenOf(parent: T.ParentNode): Node[] {
  return (parent as Element).nodeName === 'template' ? [] : parent.childNodes;
}

/** Text, comments, atomic elements and inline elements holding only such content. */
function isInlineContent(node: Node): boolean {
  if (node.nodeName === '#text' || node.nodeName === '#comment') return true;
  if (!('tagName' in node) || node.sourceCodeLocation === undefined || node.sourceCodeLocation === null) return false;
  if (ATOMIC.has(node.tagName)) return true;
  return (
    INLINE.has(node.tagName) &&
    !untouched(node) &&
    node.sourceCodeLocation.endTag !== undefined &&
    node.childNodes.every(isInlineContent)
  );
}

function untouched(el: Element): boolean {
  if (UNTOUCHED.has(el.tagName)) return true;
  return el.attrs.some(
    (a) =>
      (a.name === 'translate' && a.value === 'no') || (a.name === 'class' && /(^|\s)notranslate(\s|$)/.test(a.value)),
  );
}

function hasText(node: Node): boolean {
  if (node.nodeName === '#text') return /\p{L}/u.test((node as T.TextNode).value);
  if (!('tagName' in node) || ATOMIC.has(node.tagName)) return false;
  return node.childNodes.some(hasText);
}

function runOf(html: string, nodes: Node[]): Run {
  const run: Run = {
    start: loc(nodes[0]).startOffset,
    end: loc(nodes[nodes.length - 1]).endOffset,
    elements: [],
    text: '',
    atomic: [],
  };
  const add = (node: Node) => {
    const l = loc(node);
    if (node.nodeName === '#text') {
      run.text += html.slice(l.startOffset, l.endOffset);
    } else if (node.nodeName === '#comment' || ATOMIC.has((node as Element).tagName) || untouched(node as Element)) {
      run.atomic.push([run.text.length, run.text.length + l.endOffset - l.startOffset]);
      run.text += html.slice(l.startOffset, l.endOffset);
    } else {
      const el = node as Element;
      const tags = el.sourceCodeLocation!;
      run.elements.push({
        tag: el.tagName,
        open: html.slice(tags.startTag!.startOffset, tags.startTag!.endOffset),
        close: html.slice(tags.endTag!.startOffset, tags.endTag!.endOffset),
      });
      run.text += `<${el.tagName}>`;
      el.childNodes.forEach(add);
      run.text += `</${el.tagName}>`;
    }
  };
  nodes.forEach(add);
  return run;
}

function loc(node: Node): { startOffset: number; endOffset: number } {
  return (node as Element).sourceCodeLocation!;
}

const MARKER = /<(\/?)([a-z][a-z0-9-]*)>/gi;

/** The run's own tag markers (not those inside its atomic ranges), to be masked as 'marker' spans. */
function markersOf(run: Run): Protected[] {
  return [...run.text.matchAll(MARKER)]
    .map((m): Protected => [m.index!, m.index! + m[0].length, 'marker'])
    .filter(([s]) => !run.atomic.some(([a, e]) => s >= a && s < e));
}

/** The tag-marker mask numbers of a masked text, in order. */
const markerIds = (p: Prepared, text: string) => maskIds(text).filter((id) => p.spans[id]?.kind === 'marker');

/**
 * Sentences whose tag markers the model did not give back exactly, once each and in order, with
 * words between them where the source had words (repair would put a dropped one at the end, away
 * from the words its tag wrapped; `<b></b>` wraps nothing), are translated again
 * as their pieces between markers, one text each, all in one call; `outs` (per run, per sentence)
 * is updated in place. Other sentences keep their first translation.
 */
async function retranslateBrokenSentences(
  prepared: Prepared[],
  outs: string[][],
  translate: TranslateSentences,
): Promise<void> {
  const redo: Array<{ run: number; sentence: number; parts: string[] }> = [];
  prepared.forEach((p, run) =>
    sentencesOf(p.pieces).forEach((source, sentence) => {
      const want = markerIds(p, source);
      if (want.length === 0) return;
      // Odd indexes are the markers, even ones the text around them.
      const marker = new RegExp(`(${want.map((id) => `\\{${id}\\}`).join('|')})`);
      const parts = source.split(marker);
      const got = outs[run][sentence].split(marker);
      const hasWords = (t: string) => /[\p{L}\p{N}]/u.test(t.replace(/\{\d+\}/g, ''));
      // Kept: the same markers in the same order, and words wherever the source had words between them.
      const kept =
        got.length === parts.length &&
        got.every((g, k) => (k % 2 === 1 ? g === parts[k] : !hasWords(parts[k]) || hasWords(g)));
      if (!kept) redo.push({ run, sentence, parts });
    }),
  );
  const answers = await translateCores(
    redo.flatMap((r) => r.parts.filter((_, k) => k % 2 === 0).map((text) => ({ text }))),
    translate,
  );
  let at = 0;
  for (const r of redo)
    outs[r.run][r.sentence] = r.parts.map((part, k) => (k % 2 === 1 ? part : answers[at++])).join('');
}

/**
 * Translates texts in one call, each without its leading and trailing whitespace and tag markers
 * (a tag around a whole sentence stays around its translation; the model sees fewer tokens and
 * cannot lose them). Texts with no words left are kept as they are.
 */
async function translateCores(
  items: Array<{ prepared?: Prepared; text: string }>,
  translate: TranslateSentences,
): Promise<string[]> {
  const split = items.map(({ prepared, text }) => splitEdges(text, prepared));
  const asked = split.flatMap(([, core], i) => (needsModel(core) ? [i] : []));
  const answers = asked.length > 0 ? await translate(asked.map((i) => split[i][1])) : [];
  if (answers.length !== asked.length)
    throw new Error(`translator answered ${answers.length} texts for ${asked.length}`);
  const out = items.map((item) => item.text);
  asked.forEach((i, k) => (out[i] = split[i][0] + answers[k] + split[i][2]));
  return out;
}

const EDGE_START = /^(?:\s+|\{(\d+)\})/;
const EDGE_END = /(?:\s+|\{(\d+)\})$/;

/** A text as [leading whitespace and tag markers, core, trailing ones]. */
function splitEdges(text: string, p?: Prepared): [string, string, string] {
  const isEdge = (m: RegExpExecArray | null): m is RegExpExecArray =>
    m !== null && (m[1] === undefined || p?.spans[Number(m[1])]?.kind === 'marker');
  let start = 0;
  let end = text.length;
  let m: RegExpExecArray | null;
  while (isEdge((m = EDGE_START.exec(text.slice(start, end))))) start += m[0].length;
  while (isEdge((m = EDGE_END.exec(text.slice(start, end))))) end -= m[0].length;
  return [text.slice(0, start), text.slice(start, end), text.slice(end)];
}

/**
 * The run's translation with real tags for its markers, or undefined when the markers did not come
 * back one for one and well nested (the n-th <b> marker is the n-th <b> element of the source).
 */
function withTags(run: Run, masked: string, prepared: Prepared): string | undefined {
  const seen = new Map<string, number>();
  const stack: Array<{ tag: string; index: number }> = [];
  const used = new Set<number>();
  let ok = true;
  const markers = escapeText(masked).replace(/\{(\d+)\}/g, (whole, n: string) =>
    prepared.spans[Number(n)]?.kind === 'marker' ? prepared.spans[Number(n)].text : whole,
  );
  const text = markers.replace(MARKER, (whole, slash: string, name: string) => {
    const tag = name.toLowerCase();
    if (!ok) return whole;
    if (slash === '') {
      const nth = seen.get(tag) ?? 0;
      seen.set(tag, nth + 1);
      const index = run.elements.map((e, i) => (e.tag === tag ? i : -1)).filter((i) => i >= 0)[nth];
      if (index === undefined) return ((ok = false), whole);
      stack.push({ tag, index });
      used.add(index);
      return run.elements[index].open;
    }
    const top = stack.pop();
    if (top === undefined || top.tag !== tag) return ((ok = false), whole);
    return run.elements[top.index].close;
  });
  if (!ok || stack.length > 0 || used.size !== run.elements.length) return undefined;
  return unmask(text, prepared);
}

/** Escapes what the model wrote so it reads as text: `&` and a `<` that starts no marker. */
function escapeText(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/<(?!\/?[a-z][a-z0-9-]*>)/gi, '&lt;');
}

/** A run cut at its markers: text, tag, text, tag, ..., text (even indexes are text, with their atomic ranges). */
function piecesOf(run: Run): Array<{ text: string; atomic: Array<[number, number]> }> {
  const out: Array<{ text: string; atomic: Array<[number, number]> }> = [];
  let pos = 0;
  let element = 0;
  const stack: number[] = [];
  const textPiece = (end: number) => {
    const atomic = run.atomic
      .filter(([s]) => s >= pos && s < end)
      .map(([s, e]): [number, number] => [s - pos, e - pos]);
    out.push({ text: run.text.slice(pos, end), atomic });
  };
  for (const m of run.text.matchAll(MARKER)) {
    // Markers inside atomic ranges are real source, not ours.
    if (run.atomic.some(([s, e]) => m.index! >= s && m.index! < e)) continue;
    textPiece(m.index!);
    let tag: string;
    if (m[1] === '') {
      stack.push(element);
      tag = run.elements[element++].open;
    } else {
      tag = run.elements[stack.pop()!].close;
    }
    out.push({ text: tag, atomic: [] });
    pos = m.index! + m[0].length;
  }
  textPiece(run.text.length);
  return out;
}

/** Elements left open where HTML requires an end tag, and end tags that close nothing. */
function checkBalance(html: string, root: T.ParentNode, errors: MarkupError[]): void {
  const endTags = new Set<number>();
  const skipped: Array<[number, number]> = [];
  const walk = (node: Node | T.ParentNode) => {
    const l = (node as Element).sourceCodeLocation;
    if ('tagName' in node && l) {
      if (l.endTag) endTags.add(l.endTag.startOffset);
      else if (!VOID.has(node.tagName) && !OPTIONAL_END.has(node.tagName) && l.startTag) {
        errors.push(new MarkupError(l.startTag.startLine, `<${node.tagName}> is never closed`));
      }
      if (['script', 'style', 'textarea', 'title'].includes(node.tagName) && l.startTag)
        skipped.push([l.startTag.endOffset, l.endTag?.startOffset ?? html.length]);
    }
    if (node.nodeName === '#comment' && l) skipped.push([l.startOffset, l.endOffset]);
    if ('childNodes' in node) node.childNodes.forEach(walk);
    if ('content' in node) walk((node as T.Template).content);
  };
  walk(root);
  for (const m of html.matchAll(/<\/([a-zA-Z][^\s/>]*)[^>]*>/g)) {
    const at = m.index!;
    if (endTags.has(at) || skipped.some(([s, e]) => at >= s && at < e)) continue;
    // The document's own end tags are implied whatever the source says.
    if (/^(html|head|body)$/i.test(m[1])) continue;
    errors.push(new MarkupError(html.slice(0, at).split('\n').length, `${m[0]} closes no open element`));
  }
}
