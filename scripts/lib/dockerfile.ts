// A Dockerfile parser: global ARGs, stages, and each stage's instructions with their flags.

export interface Instruction {
  op: string;
  /** The text after the instruction word, continuation lines joined. */
  args: string;
  flags: Record<string, string>;
  line: number;
}

export interface Stage {
  name: string;
  /** The image or stage it starts from, ARGs substituted. */
  from: string;
  instructions: Instruction[];
}

export interface Dockerfile {
  args: Record<string, string>;
  stages: Stage[];
}

export function substitute(s: string, vars: Record<string, string>): string {
  return s.replace(
    /\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
    (m, a: string | undefined, b: string | undefined) => vars[(a ?? b)!] ?? m,
  );
}

export function parseDockerfile(text: string): Dockerfile {
  const logical: { text: string; line: number }[] = [];
  let buf = '';
  let startLine = 0;
  text.split('\n').forEach((raw, i) => {
    const trimmed = raw.trim();
    if (buf === '' && (trimmed === '' || trimmed.startsWith('#'))) return;
    if (buf !== '' && trimmed.startsWith('#')) return; // comments inside continuations
    if (buf === '') startLine = i + 1;
    if (trimmed.endsWith('\\')) {
      buf += trimmed.slice(0, -1) + ' ';
      return;
    }
    buf += trimmed;
    logical.push({ text: buf, line: startLine });
    buf = '';
  });
  const out: Dockerfile = { args: {}, stages: [] };
  for (const { text: l, line } of logical) {
    const m = /^([A-Za-z]+)\s+(.*)$/.exec(l);
    if (m === null) throw new Error(`Dockerfile:${line}: cannot parse "${l}"`);
    const op = m[1].toUpperCase();
    let rest = m[2];
    const flags: Record<string, string> = {};
    if (op === 'COPY' || op === 'ADD' || op === 'RUN') {
      let fm: RegExpExecArray | null;
      while ((fm = /^--([a-z-]+)(?:=(\S+))?\s+/.exec(rest)) !== null) {
        flags[fm[1]] = fm[2] ?? 'true';
        rest = rest.slice(fm[0].length);
      }
    }
    if (op === 'FROM') {
      const fm = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest);
      if (fm === null) throw new Error(`Dockerfile:${line}: bad FROM`);
      out.stages.push({
        name: fm[2] ?? String(out.stages.length),
        from: substitute(fm[1], out.args),
        instructions: [],
      });
      continue;
    }
    if (out.stages.length === 0) {
      if (op !== 'ARG') throw new Error(`Dockerfile:${line}: ${op} before the first FROM`);
      const [k, ...v] = rest.split('=');
      out.args[k.trim()] = v.join('=').trim();
      continue;
    }
    out.stages[out.stages.length - 1].instructions.push({ op, args: rest, flags, line });
  }
  return out;
}

/** ENV K=V K2="V 2" ... */
export function parseEnv(args: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|\S*)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(args)) !== null) out[m[1]] = m[2].startsWith('"') ? JSON.parse(m[2]) : m[2];
  return out;
}

/** Exec form ["a", "b"] or shell form. */
export function parseCommand(args: string): string[] {
  const t = args.trim();
  if (t.startsWith('[')) return JSON.parse(t) as string[];
  return ['/bin/sh', '-c', t];
}

/** The stages a target needs, in file order. */
export function stagesFor(df: Dockerfile, target: string): Stage[] {
  const byName = new Map(df.stages.map((s) => [s.name, s]));
  const needed = new Set<string>();
  const visit = (name: string) => {
    if (needed.has(name)) return;
    const s = byName.get(name);
    if (s === undefined) throw new Error(`no stage ${name}`);
    needed.add(name);
    if (byName.has(s.from)) visit(s.from);
    for (const i of s.instructions) if (i.flags.from !== undefined && byName.has(i.flags.from)) visit(i.flags.from);
  };
  visit(target);
  return df.stages.filter((s) => needed.has(s.name));
}
