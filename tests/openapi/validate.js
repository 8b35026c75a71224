// Validate an OpenAPI document file against the OpenAPI 3.0 schema and
// its own references (swagger-parser), for bms's docs/openapi.json.
//
//     node validate.js FILE
//
// Exits 0 and prints one line when the document is valid; otherwise
// prints the reason and exits 1 (2 for a usage error).
'use strict';

const SwaggerParser = require('@apidevtools/swagger-parser');

async function main(argv) {
    if (argv.length !== 1) {
        console.error('usage: node validate.js FILE');
        return 2;
    }
    try {
        // validate() parses, resolves every $ref and checks the schema;
        // it may change the object it is given, so it gets its own copy.
        const api = await SwaggerParser.validate(argv[0]);

        if (!/^3\.0\.\d+$/.test(api.openapi || '')) {
            console.error(`${argv[0]}: openapi is "${api.openapi}", ` +
                          'expected 3.0.x');
            return 1;
        }
        console.log(`${argv[0]}: valid OpenAPI ${api.openapi}, ` +
                    `${Object.keys(api.paths).length} paths`);
        return 0;
    } catch (err) {
        console.error(`${argv[0]}: invalid: ${err.message}`);
        return 1;
    }
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
