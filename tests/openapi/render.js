// Runs the script of web/docs.html on docs/openapi.json in a small
// stand-in for the browser's DOM (no browser is needed) and checks what
// the page shows: one entry per path and method of the document, every
// schema, no error, and a search that leaves only matching entries.
//
//     node render.js PAGE DOC
//
// Prints "ok - ..." or "FAIL - ..." per check; exits 1 when any failed.
'use strict';

const fs = require('fs');
const vm = require('vm');

let nFailed = 0;

function check(ok, what, detail) {
    if (ok) {
        console.log(`ok - ${what}`);
    } else {
        nFailed++;
        console.log(`FAIL - ${what}${detail ? ': ' + detail : ''}`);
    }
}

/* Just what docs.html uses of an element. */
class FakeElement {
    constructor(tag) {
        this.tagName = tag.toUpperCase();
        this.children = [];
        this.classes = new Set();
        this.dataset = {};
        this.id = '';
        this.open = false;
        this.value = '';
        this.text = '';
        this.listeners = {};
        this.classList = {
            toggle: (c, on) => (on ? this.classes.add(c)
                                   : this.classes.delete(c)),
            contains: (c) => this.classes.has(c),
        };
    }

    set className(v) {
        this.classes = new Set(v.split(/\s+/).filter(Boolean));
    }
    get className() { return [...this.classes].join(' '); }
    set textContent(v) { this.text = String(v); this.children = []; }
    get textContent() {
        return this.text + this.children.map((c) => c.textContent).join('');
    }
    appendChild(c) { this.children.push(c); return c; }
    addEventListener(name, fn) { this.listeners[name] = fn; }

    matches(sel) {
        const [tag, ...rest] = sel.split(':not(');
        const [t, cls] = tag.split('.');
        const notCls = rest.length ? rest[0].replace(/^\.|\)$/g, '') : null;

        return this.tagName === t.toUpperCase() && this.classes.has(cls) &&
            !(notCls && this.classes.has(notCls));
    }
    all(sel, out) {
        for (const c of this.children) {
            if (c.matches(sel)) {
                out.push(c);
            }
            c.all(sel, out);
        }
        return out;
    }
    querySelectorAll(sel) { return this.all(sel, []); }
    querySelector(sel) { return this.all(sel, [])[0] || null; }
}

async function main(argv) {
    if (argv.length !== 2) {
        console.error('usage: node render.js PAGE DOC');
        return 2;
    }
    const html = fs.readFileSync(argv[0], 'utf8');
    const doc = JSON.parse(fs.readFileSync(argv[1], 'utf8'));
    const script = html.match(/<script>([\s\S]*)<\/script>/)[1];
    const root = new FakeElement('body');
    const byId = {};

    for (const id of ['title', 'search', 'error', 'intro', 'ops',
                      'schemas', 'schemas-title']) {
        byId[id] = root.appendChild(new FakeElement('div'));
        byId[id].id = id;
    }
    const document = {
        createElement: (tag) => new FakeElement(tag),
        getElementById: (id) => byId[id] || null,
        querySelectorAll: (sel) => root.querySelectorAll(sel),
    };
    let fetched = null;
    const sandbox = {
        document, location: { hash: '' },
        window: { addEventListener: () => {} },
        fetch: (url) => {
            fetched = url;
            return Promise.resolve({ ok: true, json: () => doc });
        },
        console, JSON, Set, Map, Object, Array, String, Error,
    };

    vm.runInNewContext(script, sandbox);
    await new Promise((resolve) => setTimeout(resolve, 50));

    check(fetched === '/openapi.json', 'the page fetches /openapi.json');
    check(byId.error.textContent === '', 'the page renders without error',
          byId.error.textContent);
    const shown = new Set(byId.ops.querySelectorAll('details.op')
        .map((d) => d.children[0].children.slice(0, 2)
            .map((c) => c.textContent).join(' ')));
    const want = [];

    for (const [p, item] of Object.entries(doc.paths)) {
        for (const m of ['get', 'put', 'post', 'delete']) {
            if (item[m]) {
                want.push(m.toUpperCase() + ' ' + p);
            }
        }
    }
    const missing = want.filter((w) => !shown.has(w));

    check(missing.length === 0 && shown.size === want.length,
          `the page shows all ${want.length} operations`,
          `missing ${missing.join('; ')}`);
    const opText = byId.ops.textContent;

    check(opText.includes('Parameters') && opText.includes('Request body') &&
          opText.includes('Responses'),
          'operations show parameters, bodies and responses');
    const names = Object.keys(doc.components.schemas);
    const schemaText = byId.schemas.textContent;

    check(names.every((n) => schemaText.includes(n)),
          `the page lists all ${names.length} schemas`);
    byId.search.value = 'api/keys';
    byId.search.listeners.input();
    const visible = byId.ops.querySelectorAll('details.op')
        .filter((d) => !d.classes.has('hidden'))
        .map((d) => d.children[0].children[1].textContent);

    check(visible.length === 5 &&
          visible.every((p) => p.startsWith('/api/keys')),
          'searching "api/keys" leaves the 5 key operations',
          visible.join(', '));
    return nFailed > 0 ? 1 : 0;
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code; },
    (err) => {
        console.log(`FAIL - render.js: ${err.stack}`);
        process.exitCode = 1;
    });
