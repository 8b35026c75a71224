#!/usr/bin/env node
/*
 * The ONNX Runtime side of the engine benchmark (bench/engine.sh): times
 * one model the way `bms bench` does and prints the same JSON fields, so
 * the two engines can be set side by side.
 *
 * Inputs are read from --inputs FILE (raw little-endian tensors in input
 * order, as `bms bench --write-inputs` writes them) or generated with the
 * same seeded generator `bms bench` uses: splitmix64, floats uniform in
 * [-1, 1), integers in [0, 100), so both engines see the same values
 * either way.  The first dynamic dimension of each input is the batch,
 * later ones are 1.
 *
 *   node bench/engine_ort.js MODEL [--batch N] [--threads T]
 *       [--iterations K] [--warmup W] [--seed S] [--inputs FILE]
 *       [--dump-outputs FILE] [--compare FILE]
 *
 * --compare FILE reads outputs dumped by `bms bench --dump-outputs` and
 * adds max_abs_diff, max_abs_ref and max_rel_diff (|a - b| / (|b| + 1e-3),
 * b from ONNX Runtime) over all outputs to the JSON object.
 */
'use strict';

const fs = require('fs');
const path = require('path');
const ort = require(path.join(__dirname, 'node_modules', 'onnxruntime-node'));

const DEFAULT_ITERATIONS = 100;
const DEFAULT_BUDGET_US = 3e6;
const TOKEN_ID_RANGE = 100n;
const MASK64 = (1n << 64n) - 1n;

/* ONNX Runtime's type names and what holds each. */
const TYPES = {
    float32: { array: Float32Array, float: true },
    float64: { array: Float64Array, float: true },
    int64: { array: BigInt64Array, big: true },
    uint64: { array: BigUint64Array, big: true },
    int32: { array: Int32Array },
    uint32: { array: Uint32Array },
    int16: { array: Int16Array },
    uint16: { array: Uint16Array },
    int8: { array: Int8Array },
    uint8: { array: Uint8Array },
    bool: { array: Uint8Array, bool: true },
};


function usage(msg) {
    process.stderr.write('engine_ort: ' + msg + '\n');
    process.exit(2);
}


function fail(msg) {
    process.stderr.write('ort: ' + msg + '\n');
    process.exit(1);
}


function parseArgs(argv) {
    const opts = {
        batch: 1, threads: 1, iterations: -1, warmup: 10, seed: 1,
        inputs: null, dump: null, compare: null, model: null,
    };
    const ints = {
        '--batch': 'batch', '--threads': 'threads',
        '--iterations': 'iterations', '--warmup': 'warmup', '--seed': 'seed',
    };
    const files = {
        '--inputs': 'inputs', '--dump-outputs': 'dump', '--compare': 'compare',
    };

    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];

        if (a in ints || a in files) {
            if (i + 1 >= argv.length) {
                usage('option ' + a + ' needs a value');
            }
            const v = argv[++i];
            if (a in files) {
                opts[files[a]] = v;
            } else if (!/^[0-9]+$/.test(v)) {
                usage(a + ': expected a non-negative integer, got ' + v);
            } else {
                opts[ints[a]] = Number(v);
            }
        } else if (a.startsWith('-')) {
            usage('unknown option ' + a);
        } else if (opts.model === null) {
            opts.model = a;
        } else {
            usage('expected one model file');
        }
    }
    if (opts.model === null) {
        usage('expected one model file');
    }
    return opts;
}


/* The dims of one input at this batch (see the comment at the top). */
function inputDims(meta, batch) {
    let tookBatch = false;

    return meta.shape.map((d) => {
        if (typeof d === 'number' && d >= 0) {
            return d;
        }
        const v = tookBatch ? 1 : batch;
        tookBatch = true;
        return v;
    });
}


/* splitmix64, step for step as in src/cli/bench.c. */
function makeRandom(seed) {
    let state = BigInt(seed) & MASK64;

    return () => {
        state = (state + 0x9e3779b97f4a7c15n) & MASK64;
        let z = state;
        z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
        z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
        return z ^ (z >> 31n);
    };
}


function fillRandom(type, data, next) {
    for (let k = 0; k < data.length; k++) {
        const r = next();

        if (type.float) {
            data[k] = 2 * (Number(r >> 11n) / 9007199254740992) - 1;
        } else if (type.bool) {
            data[k] = Number(r & 1n);
        } else if (type.big) {
            data[k] = r % TOKEN_ID_RANGE;
        } else {
            data[k] = Number(r % TOKEN_ID_RANGE);
        }
    }
}


/* One ort.Tensor per model input, from the file or the generator. */
function makeInputs(session, opts) {
    const file = opts.inputs !== null ? fs.readFileSync(opts.inputs) : null;
    const next = makeRandom(opts.seed);
    const feeds = {};
    let off = 0;

    for (const meta of session.inputMetadata) {
        const type = TYPES[meta.type];
        if (!meta.isTensor || type === undefined) {
            fail('input ' + meta.name + ': type ' + meta.type +
                 ' cannot be generated');
        }
        const dims = inputDims(meta, opts.batch);
        const numel = dims.reduce((a, b) => a * b, 1);
        const data = new type.array(numel);
        if (file !== null) {
            const size = numel * type.array.BYTES_PER_ELEMENT;
            if (off + size > file.length) {
                fail(opts.inputs + ': too short for the inputs');
            }
            new Uint8Array(data.buffer).set(file.subarray(off, off + size));
            off += size;
        } else {
            fillRandom(type, data, next);
        }
        feeds[meta.name] = new ort.Tensor(meta.type, data, dims);
    }
    if (file !== null && off !== file.length) {
        fail(opts.inputs + ': expected ' + off + ' bytes, the file has ' +
             file.length);
    }
    return feeds;
}


/* numpy's default quantile: linear between the two nearest ranks. */
function quantile(sorted, q) {
    const pos = q * (sorted.length - 1);
    const lo = Math.floor(pos);

    if (lo + 1 >= sorted.length) {
        return sorted[sorted.length - 1];
    }
    return sorted[lo] + (pos - lo) * (sorted[lo + 1] - sorted[lo]);
}


function peakRssBytes() {
    try {
        const status = fs.readFileSync('/proc/self/status', 'utf8');
        const m = /^VmHWM:\s+(\d+) kB/m.exec(status);
        if (m) {
            return Number(m[1]) * 1024;
        }
    } catch (e) {
        /* fall through to what node says */
    }
    return process.resourceUsage().maxRSS * 1024;
}


function outputBytes(session, results) {
    return Buffer.concat(session.outputNames.map((name) => {
        const d = results[name].data;
        return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
    }));
}


/* Largest differences between the outputs bms dumped (a) and ours (b). */
function compare(session, results, file) {
    const dump = fs.readFileSync(file);
    let off = 0;
    let maxAbs = 0;
    let maxRef = 0;
    let maxRel = 0;

    for (const name of session.outputNames) {
        const b = results[name].data;
        const size = b.byteLength;
        if (off + size > dump.length) {
            fail(file + ': shorter than the outputs');
        }
        const copy = new Uint8Array(size);
        copy.set(dump.subarray(off, off + size));
        const a = new b.constructor(copy.buffer);
        off += size;
        for (let k = 0; k < b.length; k++) {
            const x = Number(a[k]);
            const y = Number(b[k]);
            const diff = Math.abs(x - y);
            maxAbs = Math.max(maxAbs, diff);
            maxRef = Math.max(maxRef, Math.abs(y));
            maxRel = Math.max(maxRel, diff / (Math.abs(y) + 1e-3));
        }
    }
    if (off !== dump.length) {
        fail(file + ': expected ' + off + ' bytes, the file has ' +
             dump.length);
    }
    return { max_abs_diff: maxAbs, max_abs_ref: maxRef, max_rel_diff: maxRel };
}


async function main() {
    const opts = parseArgs(process.argv.slice(2));
    const threads = opts.threads > 0 ? opts.threads
        : require('os').availableParallelism();
    const baseRss = process.memoryUsage().rss;
    const session = await ort.InferenceSession.create(opts.model, {
        intraOpNumThreads: threads,
        interOpNumThreads: 1,
        graphOptimizationLevel: 'all',
        executionMode: 'sequential',
    });
    const feeds = makeInputs(session, opts);
    const maxRuns = opts.iterations > 0 ? opts.iterations : DEFAULT_ITERATIONS;
    const lat = [];
    let results = null;

    for (let i = 0; i < opts.warmup; i++) {
        results = await session.run(feeds);
    }
    const start = process.hrtime.bigint();
    while (lat.length < maxRuns) {
        const t0 = process.hrtime.bigint();
        results = await session.run(feeds);
        const t1 = process.hrtime.bigint();
        lat.push(Number(t1 - t0) / 1e3);
        const spentUs = Number(t1 - start) / 1e3;
        if (opts.iterations <= 0 && spentUs > DEFAULT_BUDGET_US) {
            break;
        }
    }
    lat.sort((x, y) => x - y);

    const median = quantile(lat, 0.5);
    const out = {
        model: opts.model,
        batch: opts.batch,
        threads: threads,
        iterations: lat.length,
        median_us: median,
        p90_us: quantile(lat, 0.9),
        items_per_s: median > 0 ? opts.batch * 1e6 / median : 0,
        peak_rss_bytes: peakRssBytes(),
        base_rss_bytes: baseRss,
        ort_version: ort.env.versions.node,
    };
    if (opts.dump !== null) {
        fs.writeFileSync(opts.dump, outputBytes(session, results));
    }
    if (opts.compare !== null) {
        Object.assign(out, compare(session, results, opts.compare));
    }
    process.stdout.write(JSON.stringify(out) + '\n');
}


main().catch((e) => fail(String(e && e.message ? e.message : e)
    .split('\n')[0]));
