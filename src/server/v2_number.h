/*
 * Internal to the server: JSON numbers read straight from the text, for the
 * tensor data of v2 requests.  Reading a number splits it into its decimal
 * digits and exponent in one pass over the characters; turning that into
 * FP32 or FP64 then takes one or two floating-point operations in the
 * common case, and says when it cannot be sure of giving the value strtod
 * gives, so that the caller asks strtod instead.  No global state:
 * thread-safe.
 */
#ifndef BMS_SERVER_V2_NUMBER_H
#define BMS_SERVER_V2_NUMBER_H

#include <stddef.h>
#include <stdint.h>

/* A number as sign * digits * 10^exp10. */
struct bms__v2_number {
    uint64_t digits;             /* the significant digits, at most 19 */
    int exp10;
    int neg;
    int inexact;                 /* more than 19 significant digits or an
                                  * exponent past 99,999: digits and
                                  * exp10 do not hold the value */
};

/*
 * Read the JSON number (RFC 8259's grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?
 * ([eE][+-]?[0-9]+)?) that starts at s, reading no byte at or past end.
 * Returns its length in bytes, or 0 when s does not start with one.  What
 * follows the number is not looked at: "1x" reads as "1".
 */
size_t bms__v2_number_read(const char *s, const char *end,
                           struct bms__v2_number *num);

/*
 * The value of num as FP64, correctly rounded (what strtod gives).  Returns
 * 1 and writes *out, or 0 when num is outside the fast case (more than 2^53
 * as digits, a power of ten past 10^22, inexact): then nothing is written.
 */
int bms__v2_number_f64(const struct bms__v2_number *num, double *out);

/*
 * The value of num as FP32: the FP64 strtod gives rounded to FP32, as
 * (float)strtod(text) would be.  Returns 1 and writes *out, or 0 when it
 * cannot be sure of that value (then nothing is written): the digits or
 * the power of ten outside the fast case, a result near halfway between two
 * floats, outside the normal FP32 range, or too large for FP32.
 */
int bms__v2_number_f32(const struct bms__v2_number *num, float *out);

#endif
