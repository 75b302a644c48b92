/**
 * The HTML of the web view. Every value that comes from a ClaraInstance or from ClearML passes
 * through `escapeHtml` (text and attributes alike) and links only ever point at http(s) URLs, so
 * a run's name, message or task URL cannot inject markup or script. The instance page is a
 * skeleton its script (`instance-page-script.ts`) fills from the JSON endpoints.
 */
import type { InstanceSummary } from './run-data.ts';

/** How often the pages reload their data. */
export const REFRESH_MS = 5_000;

const ESCAPES: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** `value` as HTML text or a quoted attribute value: the five significant characters escaped. */
export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);
}

/** `url` when it is an absolute http(s) URL, else undefined (no javascript:, data:, ...). */
export function safeHref(url: string | undefined): string | undefined {
  if (url === undefined) return undefined;
  try {
    const parsed = new URL(url);
    return parsed.protocol === 'http:' || parsed.protocol === 'https:' ? parsed.href : undefined;
  } catch {
    // Not a URL at all: shown as text by the caller, never linked.
    return undefined;
  }
}

/**
 * Options every page takes: `query` is appended to the page's own links and assets, so a
 * `?token=` the browser came with reaches every request the page makes.
 */
export interface PageOptions {
  query: string;
}

/** The list of all instances; reloads itself every REFRESH_MS. */
export function listPage(rows: InstanceSummary[], opts: PageOptions): string {
  const body = rows.length === 0 ? '<tr><td colspan="5">no ClaraInstances</td></tr>' : '';
  const lines = rows.map((r) => {
    const href = `/instances/${encodeURIComponent(r.namespace)}/${encodeURIComponent(r.name)}`;
    return (
      `<tr data-instance="${escapeHtml(`${r.namespace}/${r.name}`)}">` +
      `<td>${escapeHtml(r.namespace)}</td>` +
      `<td><a href="${escapeHtml(href + opts.query)}">${escapeHtml(r.name)}</a></td>` +
      `<td class="phase phase-${escapeHtml(r.phase)}">${escapeHtml(r.phase)}</td>` +
      `<td class="num">${r.dice === undefined ? '' : escapeHtml(r.dice.toFixed(4))}</td>` +
      `<td>${taskLink(r)}</td></tr>`
    );
  });
  return page({
    title: 'ClaraInstances',
    head: `<meta http-equiv="refresh" content="${REFRESH_MS / 1000}">`,
    body:
      '<h1>ClaraInstances</h1><table id="instances"><thead><tr><th>namespace</th><th>name</th>' +
      '<th>phase</th><th>val_mean_dice</th><th>ClearML task</th></tr></thead>' +
      `<tbody>${body}${lines.join('')}</tbody></table>`,
  });
}

/** The skeleton of one instance's page; its script fetches and refreshes the data. */
export function instancePage(ref: { namespace: string; name: string }, opts: PageOptions): string {
  const q = escapeHtml(opts.query);
  const table = (id: string, columns: string[]) =>
    `<table id="${id}"><thead><tr>${columns.map((c) => `<th>${c}</th>`).join('')}</tr></thead>` +
    '<tbody></tbody></table>';
  return page({
    title: `${ref.namespace}/${ref.name}`,
    head:
      `<link rel="stylesheet" href="/static/uPlot.min.css${q}">` +
      `<script src="/static/uPlot.iife.min.js${q}" defer></script>` +
      `<script src="/static/instance-page.js${q}" defer></script>`,
    bodyAttributes:
      ` data-namespace="${escapeHtml(ref.namespace)}" data-name="${escapeHtml(ref.name)}"` +
      ` data-refresh-ms="${REFRESH_MS}"`,
    body:
      `<p><a href="/${q}">all instances</a></p>` +
      `<h1>${escapeHtml(ref.namespace)}/${escapeHtml(ref.name)}</h1>` +
      '<p id="summary">phase <b id="phase"></b> · iteration <span id="iteration"></span> · ' +
      'queue <span id="queue"></span> · task <span id="task"></span></p>' +
      '<p id="message"></p><p id="errors" class="error"></p>' +
      '<h2>Scalars</h2><div id="plots"></div>' +
      `<h2>Models</h2>${table('models', ['name', 'uri', 'framework', 'created'])}` +
      '<h2>Conditions</h2>' +
      table('conditions', ['type', 'status', 'reason', 'message', 'last transition']) +
      '<h2>Console log (tail)</h2><pre id="log"></pre>',
  });
}

function taskLink(r: InstanceSummary): string {
  const text = escapeHtml(r.taskId ?? '');
  const href = safeHref(r.taskUrl);
  return href === undefined ? text : `<a href="${escapeHtml(href)}">${text || 'task'}</a>`;
}

const STYLE =
  'body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}' +
  'table{border-collapse:collapse;margin-bottom:1em}' +
  'th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}' +
  'td.num{text-align:right}.error{color:#b00}' +
  '.phase-Completed{color:#070}.phase-Failed{color:#b00}.phase-Running{color:#05a}' +
  '#plots{display:flex;flex-wrap:wrap;gap:1em}' +
  '#log{background:#111;color:#ddd;padding:.6em;max-height:24em;overflow:auto;white-space:pre-wrap}';

function page(parts: { title: string; head: string; body: string; bodyAttributes?: string }) {
  return (
    '<!doctype html><html lang="en"><head><meta charset="utf-8">' +
    `<title>${escapeHtml(parts.title)} · clara-operator</title>` +
    `<style>${STYLE}</style>${parts.head}</head>` +
    `<body${parts.bodyAttributes ?? ''}>${parts.body}</body></html>\n`
  );
}
