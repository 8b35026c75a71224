/*
 * JSON numbers read straight from the text.  A pixel written as
 * "0.7058823704719543" costs strtod a few hundred cycles; here its 16
 * digits are taken eight at a time (SWAR: the eight characters as one
 * 64-bit word, checked and combined with three multiplications) and the
 * value is the digits times or over a power of ten.
 *
 * Why the results equal strtod's: when the digits fit 2^53 and the power
 * of ten is at most 10^22, both are exact doubles and one IEEE operation
 * rounds the exact quotient or product once, so the double is the
 * correctly rounded one.  For FP32 the digits may go up to 2^64: the
 * double is then within a few units in its last place of the correctly
 * rounded one, and rounding it to FP32 gives the same float unless the
 * 29 bits that rounding drops sit near halfway, which is checked.
 */
#include <math.h>
#include <string.h>

#include "server/v2_number.h"

#define MAX_DIGITS 19            /* 10^19 - 1 fits uint64 */
#define MAX_EXP10 99999

static const double pow10_exact[] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22
};


static int is_digit(char c)
{
    return (unsigned char)(c - '0') < 10;
}


#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
/* Eight digit characters at s (the first in the low byte of the word) as
 * their value; -1 when one of them is not a digit. */
static int64_t eight_digits(const char *s)
{
    const uint64_t lo = 0x0f0f0f0f0f0f0f0fULL;
    uint64_t w;

    memcpy(&w, s, 8);
    /* Every high nibble 3, every low nibble at most 9 (adding 6 to a low
     * nibble of 10 or more carries into the high one). */
    if ((w & ~lo) != 0x3030303030303030ULL ||
        (((w & lo) + 0x0606060606060606ULL) & ~lo) != 0) {
        return -1;
    }
    w &= lo;
    /* Pairs of digits, then fours, then the eight: each step multiplies the
     * lower lane (the earlier digits) and adds the one above it. */
    w = (w * 10 + (w >> 8)) & 0x00ff00ff00ff00ffULL;
    w = (w * 100 + (w >> 16)) & 0x0000ffff0000ffffULL;
    w = (w * 10000 + (w >> 32)) & 0xffffffffULL;
    return (int64_t)w;
}
#endif


/*
 * Take the run of digits at s into num->digits; leading zeros while the
 * digits are still 0 are skipped, and digits past MAX_DIGITS make num
 * inexact.  *n_taken counts the digits that went into num->digits or were
 * skipped as leading zeros.  Returns the end of the run.
 */
static inline const char *take_digits(const char *s, const char *end,
                                      struct bms__v2_number *num,
                                      int *n_sig, int *n_taken)
{
    const char *c = s;

    if (num->digits == 0) {
        while (c < end && *c == '0') {
            c++;
        }
    }
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (end - c >= 8 && *n_sig + 8 <= MAX_DIGITS) {
        int64_t v = eight_digits(c);

        if (v < 0) {
            break;
        }
        num->digits = num->digits * 100000000 + (uint64_t)v;
        *n_sig += 8;
        c += 8;
    }
#endif
    for (; c < end && is_digit(*c); c++) {
        if (*n_sig == MAX_DIGITS) {
            num->inexact = 1;
            break;
        }
        num->digits = num->digits * 10 + (uint64_t)(*c - '0');
        *n_sig += num->digits != 0;
    }
    *n_taken = (int)(c - s);
    while (c < end && is_digit(*c)) {
        c++;
    }
    return c;
}


/* The exponent part after 'e' or 'E': its end, or NULL when malformed. */
static const char *read_exponent(const char *c, const char *end,
                                 struct bms__v2_number *num)
{
    int neg = 0;
    int e = 0;

    if (c < end && (*c == '+' || *c == '-')) {
        neg = *c == '-';
        c++;
    }
    if (c == end || !is_digit(*c)) {
        return NULL;
    }
    for (; c < end && is_digit(*c); c++) {
        if (e <= MAX_EXP10) {
            e = e * 10 + (*c - '0');
        }
    }
    if (e > MAX_EXP10) {
        num->inexact = 1;
    }
    num->exp10 += neg ? -e : e;
    return c;
}


size_t bms__v2_number_read(const char *s, const char *end,
                           struct bms__v2_number *num)
{
    const char *c = s;
    int n_sig = 0;
    int n_taken;

    memset(num, 0, sizeof(*num));
    if (c < end && *c == '-') {
        num->neg = 1;
        c++;
    }
    if (c == end || !is_digit(*c)) {
        return 0;
    }

    /* The integer part: "0" alone, or digits without a leading zero.
     * Integer digits dropped past MAX_DIGITS leave num inexact. */
    if (*c == '0') {
        c++;
    } else {
        c = take_digits(c, end, num, &n_sig, &n_taken);
    }

    /* The fraction: each digit taken divides by ten once more. */
    if (c < end && *c == '.') {
        const char *f = c + 1;

        if (f == end || !is_digit(*f)) {
            return 0;
        }
        c = take_digits(f, end, num, &n_sig, &n_taken);
        num->exp10 = -n_taken;
    }
    if (c < end && (*c == 'e' || *c == 'E')) {
        c = read_exponent(c + 1, end, num);
        if (c == NULL) {
            return 0;
        }
    }
    return (size_t)(c - s);
}


/* digits * 10^exp10 in one rounding from exact operands. */
static double scale(double digits, int exp10)
{
    return exp10 < 0 ? digits / pow10_exact[-exp10]
                     : digits * pow10_exact[exp10];
}


int bms__v2_number_f64(const struct bms__v2_number *num, double *out)
{
    double v;

    if (num->inexact) {
        return 0;
    }
    if (num->digits == 0) {
        *out = num->neg ? -0.0 : 0.0;
        return 1;
    }
    if (num->digits > ((uint64_t)1 << 53) || num->exp10 < -22 ||
        num->exp10 > 22) {
        return 0;
    }
    v = scale((double)num->digits, num->exp10);
    *out = num->neg ? -v : v;
    return 1;
}


int bms__v2_number_f32(const struct bms__v2_number *num, float *out)
{
    /* Bits of a double below FP32's 24-bit significand, and their value
     * halfway between two floats. */
    const uint64_t dropped = ((uint64_t)1 << 29) - 1;
    const uint64_t half = (uint64_t)1 << 28;
    double v;
    uint64_t bits;

    if (num->inexact || num->exp10 < -22 || num->exp10 > 22) {
        return 0;
    }
    if (num->digits == 0) {
        *out = num->neg ? -0.0f : 0.0f;
        return 1;
    }
    v = scale((double)num->digits, num->exp10);
    if (num->digits > ((uint64_t)1 << 53)) {
        /* Two roundings: v is within 2 units of its last place of the
         * correctly rounded double.  Take the float only where no halfway
         * point can lie between them, in FP32's normal range. */
        memcpy(&bits, &v, sizeof(bits));
        if (v < 0x1p-126 || v >= 0x1p127 ||
            (bits & dropped) + 16 - half <= 32) {
            return 0;
        }
    } else if (v >= 0x1.ffffffp+127) {
        return 0;                /* rounds to infinity as a float */
    }
    *out = (float)(num->neg ? -v : v);
    return 1;
}
