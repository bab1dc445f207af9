// Numbers for people: durations, sizes, times, the same way the CLI prints them.

export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '-';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(2) : s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${Math.floor(s % 60)}s`;
  const hr = Math.floor(m / 60);
  return `${hr}h${m % 60}m`;
}

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
}

function pad(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

export function time(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '-';
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
         `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function clock(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '-';
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.` +
         String(d.getMilliseconds()).padStart(3, '0');
}

export function num(n: number | null | undefined, digits = 0): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '-';
  return n.toLocaleString('en-US', { maximumFractionDigits: digits });
}

export function shortHash(h: string | null | undefined): string {
  if (!h) return '-';
  const i = h.indexOf(':');
  return i >= 0 ? h.slice(0, i + 1 + 12) : h.slice(0, 12);
}

// A command as a shell would show it: argv quoted where needed, or the shell string.
export function command(c: unknown): string {
  if (c === null || c === undefined) return '-';
  if (typeof c === 'string') return c;
  const o = c as { argv?: unknown; shell?: unknown; script?: unknown };
  if (Array.isArray(o.argv)) {
    return o.argv.map((a) => {
      const t = String(a);
      return /^[\w@%+=:,./-]+$/.test(t) ? t : `'${t.replace(/'/g, `'\\''`)}'`;
    }).join(' ');
  }
  if (typeof o.shell === 'string') return o.shell;
  if (typeof o.script === 'string') return o.script;
  return JSON.stringify(c);
}
