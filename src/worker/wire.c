/*
 * The pieces of the worker protocol both sides use: mapping the shared
 * region and checking the tensor descriptors that come off the socket,
 * which neither side trusts blindly.
 */
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "worker/wire.h"


enum bms_status bms__region_map(struct bms__region *r, size_t size,
                                int grow)
{
    struct stat st;
    void *base;

    if (size <= r->size && r->base != NULL) {
        return BMS_OK;
    }
    if (fstat(r->fd, &st) != 0) {
        return BMS_ERR_IO;
    }
    if ((size_t)st.st_size < size) {
        if (!grow || ftruncate(r->fd, (off_t)size) != 0) {
            return BMS_ERR_IO;
        }
    } else {
        size = (size_t)st.st_size;
    }
    base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
    if (base == MAP_FAILED) {
        return BMS_ERR_IO;
    }
    bms__region_unmap(r);
    r->base = base;
    r->size = size;
    return BMS_OK;
}


void bms__region_unmap(struct bms__region *r)
{
    if (r->base != NULL) {
        munmap(r->base, r->size);
    }
    r->base = NULL;
    r->size = 0;
}


int bms__wire_tensor_check(const struct bms__wire_tensor *t,
                           size_t region_size)
{
    size_t elem = bms_dtype_size((enum bms_dtype)t->dtype);
    uint64_t n = 1;

    if (elem == 0 || t->n_dims < 0 || t->n_dims > BMS_MAX_DIMS) {
        return -1;
    }
    for (int i = 0; i < t->n_dims; i++) {
        if (t->dims[i] < 0 ||
            (t->dims[i] > 0 && n > UINT64_MAX / (uint64_t)t->dims[i])) {
            return -1;
        }
        n *= (uint64_t)t->dims[i];
    }
    if (n > UINT64_MAX / elem || n * elem != t->size) {
        return -1;
    }
    if (t->offset > region_size || t->size > region_size - t->offset) {
        return -1;
    }
    return 0;
}


size_t bms__wire_align(size_t n)
{
    return (n + BMS__WIRE_ALIGN - 1) / BMS__WIRE_ALIGN * BMS__WIRE_ALIGN;
}
