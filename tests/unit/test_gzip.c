/*
 * Unit tests of gzip bodies (server/gzip.c).  Streams to decode are built
 * here by hand from RFC 1951 stored blocks and an RFC 1952 header and
 * trailer, with a bitwise CRC-32 written in this file, so they do not
 * depend on zlib; what zlib writes is checked against the format's fixed
 * header bytes and by decoding it back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"

#include "server/gzip.h"

int bms_test_gzip(int *n_tests);


/* CRC-32 of RFC 1952 (reflected, polynomial 0xEDB88320), bit by bit. */
static uint32_t crc32_bits(const unsigned char *p, size_t n)
{
    uint32_t crc = 0xffffffffu;

    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) {
            crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
        }
    }
    return ~crc;
}


static void put_le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (unsigned char)(v >> (8 * i));
    }
}


/*
 * One gzip member holding data (n < 65536 bytes) in a single final
 * stored block: a 10-byte header (ID1 ID2 CM=8, no flags, MTIME 0, XFL 0,
 * OS 255), the block (BFINAL=1 BTYPE=00 in one byte, LEN, NLEN), the
 * data, then CRC-32 and ISIZE.  Writes 10 + 5 + n + 8 bytes into out.
 */
static size_t stored_member(const void *data, size_t n, unsigned char *out)
{
    static const unsigned char head[10] = {
        0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff
    };
    unsigned char *p = out;

    memcpy(p, head, 10);
    p += 10;
    *p++ = 0x01;
    *p++ = (unsigned char)(n & 0xff);
    *p++ = (unsigned char)(n >> 8);
    *p++ = (unsigned char)(~n & 0xff);
    *p++ = (unsigned char)((~n >> 8) & 0xff);
    memcpy(p, data, n);
    p += n;
    put_le32(p, crc32_bits(data, n));
    put_le32(p + 4, (uint32_t)n);
    return (size_t)(p + 8 - out);
}


static void gzip_crc_of_the_check_string(void **state)
{
    (void)state;
    /* The standard CRC-32 check value: "123456789" -> 0xCBF43926. */
    assert_int_equal(crc32_bits((const unsigned char *)"123456789", 9),
                     0xcbf43926u);
}


static void gunzip_decodes_a_hand_made_stored_stream(void **state)
{
    unsigned char gz[64];
    size_t n = stored_member("hello", 5, gz);
    struct bms_buf out = {NULL, 0, 0};
    struct bms_diag diag;

    (void)state;
    assert_int_equal(n, 28);
    assert_int_equal(bms__gunzip(gz, n, 1000, &out, &diag), BMS_OK);
    assert_int_equal(out.len, 5);
    assert_memory_equal(out.data, "hello", 5);
    bms_buf_fini(&out);
}


static void gunzip_reads_members_one_after_another(void **state)
{
    unsigned char gz[128];
    size_t n = stored_member("abc", 3, gz);
    struct bms_buf out = {NULL, 0, 0};
    struct bms_diag diag;

    (void)state;
    n += stored_member("defg", 4, gz + n);
    assert_int_equal(bms__gunzip(gz, n, 1000, &out, &diag), BMS_OK);
    assert_int_equal(out.len, 7);
    assert_memory_equal(out.data, "abcdefg", 7);
    bms_buf_fini(&out);
}


static void gunzip_rejects_a_wrong_crc(void **state)
{
    unsigned char gz[64];
    size_t n = stored_member("hello", 5, gz);
    struct bms_buf out = {NULL, 0, 0};
    struct bms_diag diag;

    (void)state;
    gz[n - 8] ^= 0x01;
    assert_int_equal(bms__gunzip(gz, n, 1000, &out, &diag),
                     BMS_ERR_INVALID);
    assert_int_equal(out.len, 0);
    assert_true(strncmp(diag.msg, "body: ", 6) == 0);
    bms_buf_fini(&out);
}


static void gunzip_rejects_what_is_not_gzip(void **state)
{
    struct bms_buf out = {NULL, 0, 0};
    struct bms_diag diag;

    (void)state;
    assert_int_equal(bms__gunzip("{\"inputs\": []}", 14, 1000, &out, &diag),
                     BMS_ERR_INVALID);
    assert_true(strncmp(diag.msg, "body: ", 6) == 0);
    assert_int_equal(bms__gunzip("", 0, 1000, &out, &diag),
                     BMS_ERR_INVALID);
    assert_int_equal(out.len, 0);
    bms_buf_fini(&out);
}


static void gunzip_rejects_every_truncation(void **state)
{
    unsigned char gz[64];
    size_t n = stored_member("hello", 5, gz);
    struct bms_buf out = {NULL, 0, 0};
    struct bms_diag diag;

    (void)state;
    for (size_t cut = 1; cut < n; cut++) {
        diag.msg[0] = '\0';
        assert_int_equal(bms__gunzip(gz, cut, 1000, &out, &diag),
                         BMS_ERR_INVALID);
        assert_int_equal(out.len, 0);
    }
    assert_string_equal(diag.msg, "body: the gzip stream is truncated");
    bms_buf_fini(&out);
}


/* zlib's header for a member without a name: 1f 8b, CM 8, FLG 0,
 * MTIME 0 (four bytes); XFL and OS follow. */
static void gzip_writes_the_rfc1952_header_and_trailer(void **state)
{
    static const unsigned char head[8] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0};
    const char *text = "the quick brown fox jumps over the lazy dog";
    size_t len = strlen(text);
    struct bms_buf out = {NULL, 0, 0};
    const unsigned char *p;

    (void)state;
    assert_int_equal(bms__gzip(text, len, 6, &out), BMS_OK);
    p = (const unsigned char *)out.data;
    assert_true(out.len > 18);
    assert_memory_equal(p, head, 8);

    /* The trailer: CRC-32 and the input size, little-endian. */
    assert_int_equal(p[out.len - 8] | p[out.len - 7] << 8 |
                     p[out.len - 6] << 16 | (uint32_t)p[out.len - 5] << 24,
                     crc32_bits((const unsigned char *)text, len));
    assert_int_equal(p[out.len - 4], len);
    assert_int_equal(p[out.len - 3] | p[out.len - 2] | p[out.len - 1], 0);
    bms_buf_fini(&out);
}


static void gzip_round_trips_sizes_and_levels(void **state)
{
    static const size_t sizes[] = {0, 1, 1000, 65537, (size_t)3 << 20};
    static const int levels[] = {1, 6, 9, 0};
    unsigned char *data = malloc((size_t)3 << 20);
    uint32_t x = 12345;

    (void)state;
    assert_non_null(data);
    /* Half text-like, half noise from a linear congruential generator. */
    for (size_t i = 0; i < ((size_t)3 << 20); i++) {
        x = x * 1103515245u + 12345u;
        data[i] = i % 2 ? (unsigned char)('a' + i % 7)
                        : (unsigned char)(x >> 24);
    }
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        for (size_t l = 0; l < sizeof(levels) / sizeof(levels[0]); l++) {
            struct bms_buf gz = {NULL, 0, 0};
            struct bms_buf back = {NULL, 0, 0};
            struct bms_diag diag;

            assert_int_equal(bms__gzip(data, sizes[s], levels[l], &gz),
                             BMS_OK);
            assert_int_equal(bms__gunzip(gz.data, gz.len, sizes[s], &back,
                                         &diag), BMS_OK);
            assert_int_equal(back.len, sizes[s]);
            if (sizes[s] > 0) {
                assert_memory_equal(back.data, data, sizes[s]);
            }
            bms_buf_fini(&gz);
            bms_buf_fini(&back);
        }
    }
    free(data);
}


/* 64 MiB of zeros deflate to about 64 KiB; inflating with a 1 MiB limit
 * stops near the limit, not after 64 MiB. */
static void gunzip_stops_a_bomb_at_the_limit(void **state)
{
    size_t big = (size_t)64 << 20;
    char *zeros = calloc(big, 1);
    struct bms_buf gz = {NULL, 0, 0};
    struct bms_buf out = {NULL, 0, 0};
    struct bms_diag diag;

    (void)state;
    assert_non_null(zeros);
    assert_int_equal(bms__gzip(zeros, big, 9, &gz), BMS_OK);
    free(zeros);
    assert_true(gz.len < ((size_t)1 << 20));
    assert_int_equal(bms_buf_append(&out, "keep", 4), BMS_OK);
    assert_int_equal(bms__gunzip(gz.data, gz.len, (size_t)1 << 20, &out,
                                 &diag), BMS_ERR_LIMIT);
    assert_string_equal(diag.msg, "body: larger than the limit of 1048576 "
                        "bytes once inflated");
    assert_int_equal(out.len, 4);
    assert_string_equal(out.data, "keep");
    assert_true(out.cap <= ((size_t)4 << 20));

    /* Exactly at the limit is fine: 1 MiB of zeros with a 1 MiB limit. */
    bms_buf_reset(&gz);
    zeros = calloc((size_t)1 << 20, 1);
    assert_non_null(zeros);
    assert_int_equal(bms__gzip(zeros, (size_t)1 << 20, 6, &gz), BMS_OK);
    bms_buf_reset(&out);
    assert_int_equal(bms__gunzip(gz.data, gz.len, (size_t)1 << 20, &out,
                                 &diag), BMS_OK);
    assert_int_equal(out.len, (size_t)1 << 20);
    assert_memory_equal(out.data, zeros, (size_t)1 << 20);
    free(zeros);
    bms_buf_fini(&gz);
    bms_buf_fini(&out);
}


static void gzip_accepted_follows_the_q_values(void **state)
{
    static const struct {
        const char *header;
        int accepted;
    } cases[] = {
        {"gzip", 1},
        {"GZip", 1},
        {"x-gzip", 1},
        {"gzip, deflate, br", 1},
        {"deflate, gzip;q=0.5", 1},
        {"gzip;q=0", 0},
        {"gzip; q=0.000", 0},
        {"gzip;q=0.001", 1},
        {"gzip;q=1.0", 1},
        {"br;q=1.0, gzip ; q=0", 0},
        {"*", 1},
        {"*;q=0", 0},
        {"gzip;q=0, *", 0},
        {"*;q=0, gzip", 1},
        {"identity", 0},
        {"gzipx", 0},
        {"deflate", 0},
        {"", 0},
        {"gzip;q=abc", 0},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (bms__gzip_accepted(cases[i].header) != cases[i].accepted) {
            fail_msg("'%s': expected %d", cases[i].header,
                     cases[i].accepted);
        }
    }
    assert_int_equal(bms__gzip_accepted(NULL), 0);
}


int bms_test_gzip(int *n_tests)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(gzip_crc_of_the_check_string),
        cmocka_unit_test(gunzip_decodes_a_hand_made_stored_stream),
        cmocka_unit_test(gunzip_reads_members_one_after_another),
        cmocka_unit_test(gunzip_rejects_a_wrong_crc),
        cmocka_unit_test(gunzip_rejects_what_is_not_gzip),
        cmocka_unit_test(gunzip_rejects_every_truncation),
        cmocka_unit_test(gzip_writes_the_rfc1952_header_and_trailer),
        cmocka_unit_test(gzip_round_trips_sizes_and_levels),
        cmocka_unit_test(gunzip_stops_a_bomb_at_the_limit),
        cmocka_unit_test(gzip_accepted_follows_the_q_values),
    };

    return BMS_RUN_GROUP(tests, n_tests);
}
