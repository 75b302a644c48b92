/**
 * The emulated ClearML files server (`fileserver/fileserver.py`): `POST /` with multipart
 * fields whose names are the target paths, `GET /<path>` to download, `DELETE /<path>`.
 * Files are kept in memory in `EmulatorState.files`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

import type { EmulatorState } from './state.ts';

/** One multipart part. */
interface Part {
  name: string;
  contentType: string;
  data: Buffer;
}

/** Splits a multipart/form-data body into its parts. */
export function parseMultipart(body: Buffer, contentType: string): Part[] {
  const m = /boundary=(?:"([^"]+)"|([^;]+))/i.exec(contentType);
  const boundary = m?.[1] ?? m?.[2];
  if (!boundary) return [];
  const delimiter = Buffer.from(`--${boundary}`);
  const parts: Part[] = [];
  let start = body.indexOf(delimiter);
  while (start >= 0) {
    const next = body.indexOf(delimiter, start + delimiter.length);
    if (next < 0) break;
    // Each part: CRLF, headers, CRLF CRLF, data, CRLF before the next delimiter.
    const chunk = body.subarray(start + delimiter.length + 2, next - 2);
    const split = chunk.indexOf('\r\n\r\n');
    if (split >= 0) {
      const headers = chunk.subarray(0, split).toString('utf8');
      const name = /name="([^"]*)"/i.exec(headers)?.[1];
      const type = /content-type:\s*([^\r\n]+)/i.exec(headers)?.[1] ?? 'application/octet-stream';
      if (name !== undefined)
        parts.push({ name, contentType: type, data: chunk.subarray(split + 4) });
    }
    start = next;
  }
  return parts;
}

/** Handles one files-server request; `record` notes requests the real server would refuse. */
export function handleFilesRequest(opts: {
  state: EmulatorState;
  req: IncomingMessage;
  res: ServerResponse;
  body: Buffer;
  record: (what: string) => void;
}): void {
  const { state, req, res, body } = opts;
  const url = new URL(req.url ?? '/', 'http://files');
  const path = decodeURIComponent(url.pathname).replace(/^\/+/, '');
  res.setHeader('server', 'clearml');

  if (req.method === 'GET' || req.method === 'HEAD') {
    if (path === '') return void res.writeHead(200, { 'content-type': 'text/plain' }).end('OK');
    const file = state.files.get(path);
    if (!file)
      return void res.writeHead(404, { 'content-type': 'text/html' }).end('<h1>Not Found</h1>');
    res.writeHead(200, { 'content-type': file.contentType, 'content-length': file.data.length });
    return void res.end(req.method === 'HEAD' ? undefined : file.data);
  }
  if (req.method === 'POST' && path === '') {
    const stored: string[] = [];
    for (const part of parseMultipart(body, req.headers['content-type'] ?? '')) {
      const target = part.name.replace(/^\/+/, '');
      if (target === '' || target.split('/').includes('..')) continue;
      state.files.set(target, { data: Buffer.from(part.data), contentType: part.contentType });
      stored.push(target);
    }
    return void res
      .writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
      .end(JSON.stringify(stored));
  }
  if (req.method === 'DELETE' && path !== '') {
    if (!state.files.delete(path)) return void res.writeHead(404).end(`File ${path} not found`);
    return void res
      .writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
      .end(JSON.stringify(path));
  }
  opts.record(`${req.method ?? '?'} /${path}`);
  res.writeHead(405, { 'content-type': 'text/html' }).end('<h1>Method Not Allowed</h1>');
}
