/*
 * The operator registry: bms__op_find looks an ONNX op_type up in the
 * structural table (ops/core.c) and then the arithmetic one.
 */
#include <string.h>

#include "engine/graph.h"

/* No weak stand-in for bms__ops_math here: in a static library a weak
 * definition satisfies the reference, so the linker would never pull the
 * real table's object out of the archive. */


static const struct bms__op *find_in(const struct bms__op *table,
                                     const char *op_type)
{
    for (; table->op_type != NULL; table++) {
        if (strcmp(table->op_type, op_type) == 0) {
            return table;
        }
    }
    return NULL;
}


const struct bms__op *bms__op_find(const char *op_type)
{
    const struct bms__op *op;

    if (op_type == NULL) {
        return NULL;
    }
    op = find_in(bms__ops_core, op_type);
    return op != NULL ? op : find_in(bms__ops_math, op_type);
}
