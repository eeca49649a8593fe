// gettext catalogs (.po) through a sentence translator: every untranslated msgid gets a msgstr
// (each plural form from msgid or msgid_plural), translated entries, comments, flags, contexts and
// obsolete entries are kept; the header gets the target's Language and Plural-Forms. The output
// passes `msgfmt -c`. Entries come out in the input's order (obsolete ones last, as gettext writes them).
import { type PoEntry, type PoTable, po } from 'gettext-parser';
import type { TranslateSentences } from './pipeline.ts';
import { translateTexts } from './pipeline.ts';
import type { TooLong } from './segment.ts';

/** A malformed catalog: `line` is where the problem is (1-based). */
export class CatalogError extends Error {
  /** A caller's mistake: HTTP layers answer it as a 400. */
  readonly statusCode = 400;
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(`line ${line}: ${message}`);
  }
}

/** Plural forms of the languages taskmoe models serve (from gettext's own table). */
const PLURAL_FORMS: Record<string, string> = {
  en: 'nplurals=2; plural=(n != 1);',
  de: 'nplurals=2; plural=(n != 1);',
  es: 'nplurals=2; plural=(n != 1);',
  sv: 'nplurals=2; plural=(n != 1);',
  it: 'nplurals=2; plural=(n != 1);',
  nl: 'nplurals=2; plural=(n != 1);',
  pt: 'nplurals=2; plural=(n > 1);',
  fr: 'nplurals=2; plural=(n > 1);',
  tr: 'nplurals=2; plural=(n != 1);',
  fi: 'nplurals=2; plural=(n != 1);',
  ru: 'nplurals=3; plural=(n%10==1 && n%100!=11 ? 0 : n%10>=2 && n%10<=4 && (n%100<10 || n%100>=20) ? 1 : 2);',
  uk: 'nplurals=3; plural=(n%10==1 && n%100!=11 ? 0 : n%10>=2 && n%10<=4 && (n%100<10 || n%100>=20) ? 1 : 2);',
  pl: 'nplurals=3; plural=(n==1 ? 0 : n%10>=2 && n%10<=4 && (n%100<10 || n%100>=20) ? 1 : 2);',
  cs: 'nplurals=3; plural=(n==1) ? 0 : (n>=2 && n<=4) ? 1 : 2;',
  ja: 'nplurals=1; plural=0;',
  ko: 'nplurals=1; plural=0;',
  zh: 'nplurals=1; plural=0;',
};

const KEYWORD_LINE = /^(?:#~\s*)?(?:msgctxt|msgid|msgid_plural|msgstr(?:\[\d+\])?)\s+"(?:\\.|[^"\\])*"\s*$/;
const STRING_LINE = /^(?:#~\s*)?"(?:\\.|[^"\\])*"\s*$/;

/** Throws a CatalogError naming the first line that is neither a comment, a keyword with a whole string, nor a continued string. */
export function checkCatalog(text: string): void {
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (
      line === '' ||
      (line.startsWith('#') && !line.startsWith('#~')) ||
      line.startsWith('#~|') ||
      KEYWORD_LINE.test(line) ||
      STRING_LINE.test(line)
    )
      return;
    if (line.startsWith('#~') && !/"/.test(line)) return;
    throw new CatalogError(
      i + 1,
      /^(msg\w*(\[\d+\])?\s+)?"/.test(line) ? 'unterminated string' : `unexpected "${line.slice(0, 40)}"`,
    );
  });
}

/** The catalog's plural count for `target`: its own Plural-Forms when it has a real one, else gettext's for the language. */
function pluralForms(headers: Record<string, string>, target: string): { header: string; n: number } {
  const own = headers['Plural-Forms'];
  const header =
    own && /nplurals=\d+/.test(own) && headers.Language === target ? own : (PLURAL_FORMS[target] ?? PLURAL_FORMS.en);
  return { header, n: Number(/nplurals=(\d+)/.exec(header)![1]) };
}

/** Translates a .po catalog's untranslated entries into `target`; returns the new catalog text. */
export async function translateCatalog(
  text: string,
  target: string,
  translate: TranslateSentences,
  tooLong?: TooLong,
): Promise<string> {
  checkCatalog(text);
  let table: PoTable;
  try {
    table = po.parse(text);
  } catch (err) {
    const line = (err as { lineNumber?: number }).lineNumber ?? 1;
    throw new CatalogError(
      line,
      (err as Error).message.replace(/^Error parsing PO data: /, '').replace(/ at line \d+\./, '.'),
    );
  }
  const headers = table.headers;
  // The header is filled in now: no longer a fuzzy template.
  const header = table.translations['']?.[''];
  if (header?.comments?.flag)
    header.comments.flag = header.comments.flag
      .split(',')
      .map((f) => f.trim())
      .filter((f) => f !== 'fuzzy')
      .join(', ');
  const plural = pluralForms(headers, target);
  const jobs: Array<{ entry: { msgstr: string[] }; form: number; source: string }> = [];
  for (const context of Object.values(table.translations)) {
    for (const entry of Object.values(context)) {
      if (entry.msgid === '' || entry.msgstr.some((s) => s !== '')) continue;
      if (entry.msgid_plural === undefined) {
        entry.msgstr = [''];
        jobs.push({ entry, form: 0, source: entry.msgid });
      } else {
        entry.msgstr = Array.from({ length: plural.n }, () => '');
        for (let f = 0; f < plural.n; f++)
          jobs.push({ entry, form: f, source: f === 0 ? entry.msgid : entry.msgid_plural });
      }
    }
  }
  // Each distinct source once.
  const sources = [...new Set(jobs.map((j) => j.source))];
  const translated = new Map(sources.map((s, i) => [s, i]));
  const out = await translateTexts(sources, translate, tooLong);
  for (const j of jobs) j.entry.msgstr[j.form] = out[translated.get(j.source)!];
  Object.assign(headers, {
    'Content-Type': 'text/plain; charset=UTF-8',
    'Content-Transfer-Encoding': '8bit',
    'MIME-Version': '1.0',
    Language: target,
    'Plural-Forms': plural.header,
    'PO-Revision-Date': poDate(new Date()),
  });
  for (const [key, fallback] of [
    ['Project-Id-Version', 'PACKAGE VERSION'],
    ['Last-Translator', 'taskmoe machine translation'],
    ['Language-Team', 'none'],
  ] as const) {
    if (!headers[key] || /FULL NAME|LANGUAGE </.test(headers[key])) headers[key] = fallback;
  }
  table.charset = 'utf-8';
  const order = inputOrder(text, table);
  const rank = (e: PoEntry) => order.get(e) ?? Number.MAX_SAFE_INTEGER;
  return po.compile(table, { foldLength: 0, sort: (a, b) => rank(a) - rank(b) }).toString('utf8') + '\n';
}

/** A PO string's value as gettext-parser reads it: `\n`, `\t`, `\r` escapes, any other escaped character itself. */
const unquote = (s: string) =>
  s
    .slice(s.indexOf('"') + 1, s.lastIndexOf('"'))
    .replace(/\\(.)/g, (_, c: string) => ({ n: '\n', t: '\t', r: '\r' })[c] ?? c);
const entryKey = (obsolete: boolean, msgctxt: string, msgid: string) =>
  `${obsolete ? '~' : ''}\u0004${msgctxt}\u0004${msgid}`;

/**
 * Each parsed entry's position in the catalog's text. gettext-parser's table groups entries by
 * context (and JavaScript orders integer-like keys first), so the input order is read off the
 * lines (checkCatalog has vouched for their shape): an entry starts at `msgctxt`, or at a `msgid`
 * with no `msgctxt` before it.
 */
function inputOrder(text: string, table: PoTable): Map<PoEntry, number> {
  const keys = new Map<string, number>();
  let current: { obsolete: boolean; msgctxt: string; msgid: string; field: string } | undefined;
  const close = () => {
    const key = current && entryKey(current.obsolete, current.msgctxt, current.msgid);
    if (key !== undefined && !keys.has(key)) keys.set(key, keys.size);
  };
  for (const raw of text.split(/\r?\n/)) {
    const obsolete = raw.trimStart().startsWith('#~');
    const line = raw.trim().replace(/^#~\s*/, '');
    const keyword = /^(msgctxt|msgid|msgid_plural|msgstr(?:\[\d+\])?)\s+"/.exec(line)?.[1];
    if (keyword === 'msgctxt' || (keyword === 'msgid' && current?.field !== 'msgctxt')) {
      close();
      current = { obsolete, msgctxt: '', msgid: '', field: keyword };
    } else if (keyword !== undefined && current) current.field = keyword;
    if (!current || !line.endsWith('"') || (keyword === undefined && !line.startsWith('"'))) continue;
    if (current.field === 'msgctxt') current.msgctxt += unquote(line);
    else if (current.field === 'msgid') current.msgid += unquote(line);
  }
  close();
  const order = new Map<PoEntry, number>();
  for (const [obsolete, section] of [
    [false, table.translations],
    [true, table.obsolete ?? {}],
  ] as const)
    for (const [msgctxt, entries] of Object.entries(section))
      for (const [msgid, entry] of Object.entries(entries)) {
        const at = keys.get(entryKey(obsolete, msgctxt, msgid));
        if (at !== undefined) order.set(entry, at);
      }
  return order;
}

function poDate(d: Date): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}+0000`;
}
