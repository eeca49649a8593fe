// The playground's script: plain browser JavaScript, no framework, no build. Everything the server
// or the user sends is shown with textContent, never parsed as HTML.
const $ = (id) => document.getElementById(id);
const el = {
  form: $('translate-form'),
  source: $('source'),
  target: $('target'),
  swap: $('swap'),
  q: $('q'),
  counter: $('counter'),
  detected: $('detected'),
  output: $('output'),
  altBox: $('alternatives-box'),
  alternatives: $('alternatives'),
  timing: $('timing'),
  copy: $('copy'),
  altCount: $('alternatives-count'),
  live: $('live'),
  keyBox: $('key-box'),
  apiKey: $('api-key'),
  translate: $('translate'),
  fileForm: $('file-form'),
  file: $('file'),
  fileResult: $('file-result'),
  message: $('message'),
};

const state = { charLimit: 2000, languages: [], names: new Map(), detected: null, busy: 0, pending: null };

function say(text) {
  el.message.textContent = text;
}

/** The error a failed response carries, worded for a person; 413 and 429 get their own words. */
async function failure(res) {
  let detail = '';
  try {
    detail = (await res.json()).error ?? '';
  } catch {
    detail = res.statusText;
  }
  if (res.status === 413) return `Too large for the server: ${detail || 'the upload is over its size limit'}`;
  if (res.status === 429) return `Slow down: ${detail} (retry in ${res.headers.get('retry-after') ?? 'a few'} s)`;
  if (res.status === 403) return `Not allowed: ${detail}`;
  return `Error ${res.status}: ${detail}`;
}

function nameOf(code) {
  return state.names.get(code) ?? code;
}

function option(value, label) {
  const o = document.createElement('option');
  o.value = value;
  o.textContent = label;
  return o;
}

/** Targets reachable from the chosen source (all of them when it is detected). */
function fillTargets() {
  const keep = el.target.value;
  const src = el.source.value;
  const targets = new Set();
  for (const l of state.languages) {
    if (src === 'auto' || l.code === src) for (const t of l.targets) targets.add(t);
  }
  el.target.replaceChildren(
    ...[...targets].sort((a, b) => nameOf(a).localeCompare(nameOf(b))).map((t) => option(t, nameOf(t))),
  );
  if (targets.has(keep)) el.target.value = keep;
  else if (src !== 'en' && targets.has('en')) el.target.value = 'en';
}

function updateCounter() {
  const n = el.q.value.length;
  el.counter.textContent = `${n} / ${state.charLimit} characters`;
  el.counter.classList.toggle('over', n > state.charLimit);
}

function apiKeyField() {
  return el.apiKey.value.trim();
}

async function translate() {
  const q = el.q.value;
  if (q.trim() === '') {
    say('Type some text to translate.');
    return;
  }
  if (q.length > state.charLimit) {
    say(`The text has ${q.length} characters; the server takes at most ${state.charLimit}.`);
    return;
  }
  const body = {
    q,
    source: el.source.value,
    target: el.target.value,
    format: 'text',
    alternatives: Number(el.altCount.value),
  };
  if (apiKeyField() !== '') body.api_key = apiKeyField();
  const started = performance.now();
  const ticket = ++state.busy;
  el.translate.disabled = true;
  el.form.setAttribute('aria-busy', 'true');
  try {
    const res = await fetch('/translate', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (ticket !== state.busy) return; // a newer request answers instead
    if (!res.ok) {
      say(await failure(res));
      return;
    }
    const data = await res.json();
    say('');
    el.output.textContent = data.translatedText;
    el.copy.disabled = false;
    const alts = Array.isArray(data.alternatives) ? data.alternatives : [];
    el.alternatives.replaceChildren(
      ...alts.map((a) => {
        const li = document.createElement('li');
        li.textContent = a;
        return li;
      }),
    );
    el.altBox.hidden = alts.length === 0;
    const d = data.detectedLanguage;
    state.detected = d && typeof d.language === 'string' ? d.language : null;
    el.detected.textContent = state.detected
      ? `Detected: ${nameOf(state.detected)} (${Math.round(d.confidence)}%)`
      : '';
    el.timing.textContent = `Translated in ${Math.round(performance.now() - started)} ms`;
  } catch (err) {
    say(`The server did not answer: ${err.message}`);
  } finally {
    if (ticket === state.busy) {
      el.translate.disabled = false;
      el.form.removeAttribute('aria-busy');
    }
  }
}

function swap() {
  const from = el.source.value === 'auto' ? state.detected : el.source.value;
  if (!from) {
    say('Translate once first, so that the detected language can become the target.');
    return;
  }
  const to = el.target.value;
  el.source.value = to;
  fillTargets();
  if ([...el.target.options].some((o) => o.value === from)) el.target.value = from;
  if (el.output.textContent !== '') el.q.value = el.output.textContent;
  el.output.textContent = '';
  el.detected.textContent = '';
  el.altBox.hidden = true;
  el.copy.disabled = true;
  updateCounter();
  say('');
}

async function copy() {
  try {
    await navigator.clipboard.writeText(el.output.textContent);
    el.timing.textContent = 'Copied to the clipboard';
  } catch {
    // No clipboard permission (plain http, some browsers): select the text for Ctrl+C instead.
    getSelection().selectAllChildren(el.output);
    el.timing.textContent = 'Selected: press Ctrl+C to copy';
  }
}

async function translateFile() {
  const file = el.file.files[0];
  if (!file) {
    say('Choose a .txt, .html or .po file first.');
    return;
  }
  const form = new FormData();
  form.append('source', el.source.value);
  form.append('target', el.target.value);
  if (apiKeyField() !== '') form.append('api_key', apiKeyField());
  form.append('file', file);
  el.fileResult.textContent = `Translating ${file.name}…`;
  const started = performance.now();
  try {
    const res = await fetch('/translate_file', { method: 'POST', body: form });
    if (!res.ok) {
      el.fileResult.textContent = '';
      say(await failure(res));
      return;
    }
    const { translatedFileUrl } = await res.json();
    const url = new URL(translatedFileUrl, location.href);
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      throw new Error('the server answered an odd download address');
    const a = document.createElement('a');
    a.href = url.href;
    a.textContent = `Download the translated ${file.name}`;
    a.download = file.name;
    el.fileResult.replaceChildren(a, document.createTextNode(` (${Math.round(performance.now() - started)} ms)`));
    say('');
  } catch (err) {
    el.fileResult.textContent = '';
    say(`The file could not be translated: ${err.message}`);
  }
}

let liveTimer;
el.q.addEventListener('input', () => {
  updateCounter();
  if (!el.live.checked) return;
  clearTimeout(liveTimer);
  liveTimer = setTimeout(translate, 500);
});
el.q.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
    e.preventDefault();
    translate();
  }
});
el.form.addEventListener('submit', (e) => {
  e.preventDefault();
  translate();
});
el.fileForm.addEventListener('submit', (e) => {
  e.preventDefault();
  translateFile();
});
el.source.addEventListener('change', () => {
  fillTargets();
  state.detected = null;
  el.detected.textContent = '';
});
el.swap.addEventListener('click', swap);
el.copy.addEventListener('click', copy);

async function start() {
  try {
    const settings = await fetch('/frontend/settings').then((r) => (r.ok ? r.json() : {}));
    if (Number.isInteger(settings.charLimit) && settings.charLimit > 0) state.charLimit = settings.charLimit;
    el.keyBox.hidden = !settings.keyRequired;
    const res = await fetch('/languages');
    if (!res.ok) throw new Error(await failure(res));
    state.languages = await res.json();
    for (const l of state.languages) state.names.set(l.code, l.name);
    el.source.append(...state.languages.map((l) => option(l.code, l.name)));
    fillTargets();
    updateCounter();
    // For tests and the load benchmark: when the page became usable, from navigation start.
    document.body.dataset.readyMs = String(Math.round(performance.now()));
    document.body.dataset.ready = 'true';
  } catch (err) {
    say(`Could not load the languages: ${err.message}`);
  }
}

start();
