/*
 * The messages between the server and a worker child, and the shared
 * region both map.  Every message is one SOCK_SEQPACKET datagram: a
 * struct bms__wire_head and then n_tensors struct bms__wire_tensor.  A
 * tensor's bytes lie in the region at its offset; the socket never
 * carries them.  Either side may grow the region (ftruncate) and says its
 * size in region_size; the other side maps it again before it reads.
 */
#ifndef BMS_WORKER_WIRE_H
#define BMS_WORKER_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "bms/base.h"
#include "bms/tensor.h"

#define BMS__WIRE_MAGIC 0x626d7377u      /* "bmsw" */
#define BMS__WIRE_MAX_TENSORS 1024
#define BMS__WIRE_ALIGN 64               /* bytes between tensors */

enum bms__wire_kind {
    BMS__WIRE_READY = 1,         /* child: loaded (or not: status) */
    BMS__WIRE_RUN = 2,           /* parent: run these inputs */
    BMS__WIRE_DONE = 3,          /* child: the outputs, or the error */
    BMS__WIRE_QUIT = 4           /* parent: leave now */
};

struct bms__wire_tensor {
    int32_t dtype;
    int32_t n_dims;
    int64_t dims[BMS_MAX_DIMS];
    uint64_t offset;             /* into the region, bytes */
    uint64_t size;               /* bytes */
};

struct bms__wire_head {
    uint32_t magic;
    uint32_t kind;
    uint64_t seq;                /* a DONE repeats its RUN's number */
    uint64_t region_size;        /* bytes the sender has the region at */
    int32_t status;              /* enum bms_status of a READY or DONE */
    int32_t n_tensors;
    char msg[BMS_DIAG_SIZE];     /* the error of a failed READY or DONE */
};

/* The shared region as one side maps it. */
struct bms__region {
    int fd;
    void *base;
    size_t size;                 /* bytes mapped */
};

/*
 * Map at least size bytes of the region, growing the file first when
 * grow is set.  Returns BMS_ERR_IO when the system refuses; the old
 * mapping is kept then.
 */
enum bms_status bms__region_map(struct bms__region *r, size_t size,
                                int grow);

/* Unmap the region (the fd stays open).  Accepts an unmapped region. */
void bms__region_unmap(struct bms__region *r);

/*
 * Check a tensor descriptor that came off the socket: known dtype with a
 * size, 0..BMS_MAX_DIMS dims, none negative, size equal to the bytes the
 * dims make, and the bytes inside region_size.  Returns 0 when it holds.
 */
int bms__wire_tensor_check(const struct bms__wire_tensor *t,
                           size_t region_size);

/* Round up to BMS__WIRE_ALIGN. */
size_t bms__wire_align(size_t n);

#endif
