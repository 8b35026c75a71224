// Checks of bms's OpenAPI document against the routes bms parses and
// against a running bms:
//
//     node check.js DOC BASE_URL MODEL
//
// DOC is docs/openapi.json, BASE_URL a bms started for the test
// (http://127.0.0.1:PORT), MODEL a model it serves.  Prints one line per
// check, "ok - ..." or "FAIL - ...", and exits 1 when any failed.
//
// ROUTES is the list of path patterns src/server/route.c parses, kept by
// hand: it is compared both ways with the document's paths, and each
// pattern is probed on the server with a method no route takes (PATCH),
// which must be answered 405 with an Allow header equal to the methods
// the document gives that path; a path route.c does not know is 404
// "not found" instead, so the list cannot drift from route.c unseen.
'use strict';

const fs = require('fs');
const path = require('path');

const ROUTES = [
    '/v2',
    '/v2/health/live',
    '/v2/health/ready',
    '/v2/models/{name}',
    '/v2/models/{name}/versions/{version}',
    '/v2/models/{name}/ready',
    '/v2/models/{name}/versions/{version}/ready',
    '/v2/models/{name}/infer',
    '/v2/models/{name}/versions/{version}/infer',
    '/v2/models/{name}/routing',
    '/v2/models/{name}/stop',
    '/v2/models/{name}/versions/{version}/stop',
    '/v2/models/{name}/resume',
    '/v2/models/{name}/versions/{version}/resume',
    '/api/alerts',
    '/api/keys',
    '/api/keys/{id}',
    '/api/requests',
    '/api/audit',
    '/api/models/{name}/config',
    '/v2/repository/index',
    '/v2/repository/models/{name}/load',
    '/v2/repository/models/{name}/versions/{version}/load',
    '/v2/repository/models/{name}/unload',
    '/v2/repository/models/{name}/versions/{version}/unload',
    '/v2/repository/models/{name}/package',
    '/openapi.json',
    '/docs',
];

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head',
                 'options', 'trace'];

let nFailed = 0;

function check(ok, what, detail) {
    if (ok) {
        console.log(`ok - ${what}`);
    } else {
        nFailed++;
        console.log(`FAIL - ${what}${detail ? ': ' + detail : ''}`);
    }
}

function docMethods(item) {
    return METHODS.filter((m) => item[m]).map((m) => m.toUpperCase())
        .sort();
}

function instantiate(pattern, model) {
    return pattern.replace('{name}', model).replace('{version}', '1')
        .replace('{id}', 'a1b2c3d4e5f6');
}

function checkPathsBothWays(doc) {
    const paths = Object.keys(doc.paths);

    for (const r of ROUTES) {
        check(paths.includes(r), `route ${r} is in the document`);
    }
    for (const p of paths) {
        check(ROUTES.includes(p), `document path ${p} is a route bms ` +
              'parses');
    }
}

async function checkAllow(doc, base, model) {
    for (const r of ROUTES) {
        const item = doc.paths[r];
        const res = await fetch(base + instantiate(r, model),
                                { method: 'PATCH' });
        const body = await res.text();
        const allow = (res.headers.get('allow') || '').split(',')
            .map((s) => s.trim()).filter((s) => s).sort();
        const want = item ? docMethods(item) : [];

        check(res.status === 405 &&
              JSON.stringify(allow) === JSON.stringify(want),
              `${r}: the server allows ${want.join(', ') || '?'}`,
              `status ${res.status}, Allow "${allow.join(', ')}", ` +
              `body ${body.slice(0, 120)}`);
    }
    const res = await fetch(base + '/v2/no/such/route', { method: 'PATCH' });

    check(res.status === 404, 'an unknown path is 404, not 405',
          `status ${res.status}`);
}

async function checkServed(docFile, base) {
    const want = fs.readFileSync(docFile);
    let res = await fetch(base + '/openapi.json');
    const got = Buffer.from(await res.arrayBuffer());

    check(res.status === 200 && want.equals(got),
          'GET /openapi.json is byte-identical to docs/openapi.json',
          `status ${res.status}, ${got.length} bytes, want ${want.length}`);
    check((res.headers.get('content-type') || '')
              .startsWith('application/json'),
          'GET /openapi.json is application/json',
          res.headers.get('content-type'));
    res = await fetch(base + '/docs');
    const page = await res.text();
    const pageFile = path.join(__dirname, '..', '..', 'web', 'docs.html');

    check(res.status === 200 &&
          (res.headers.get('content-type') || '').startsWith('text/html'),
          'GET /docs is an HTML page', `status ${res.status}`);
    check(page === fs.readFileSync(pageFile, 'utf8'),
          'GET /docs is web/docs.html');
    check(!/(src|href)\s*=\s*["']?(https?:)?\/\//i.test(page) &&
          !/@import|url\(/i.test(page),
          '/docs loads nothing from outside (no remote script, style or ' +
          'font)');
    check(page.includes("fetch('/openapi.json')"),
          '/docs renders the served /openapi.json');
}

async function main(argv) {
    if (argv.length !== 3) {
        console.error('usage: node check.js DOC BASE_URL MODEL');
        return 2;
    }
    const [docFile, base, model] = argv;
    const doc = JSON.parse(fs.readFileSync(docFile, 'utf8'));

    checkPathsBothWays(doc);
    await checkAllow(doc, base, model);
    await checkServed(docFile, base);
    return nFailed > 0 ? 1 : 0;
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code; },
    (err) => {
        console.log(`FAIL - check.js: ${err.message}`);
        process.exitCode = 1;
    });
