/*
 * The certificate and private key of an HTTPS server, read from PEM files
 * and checked before the server starts, so that a missing file, a file
 * that holds no certificate or key, or a key that does not belong to the
 * certificate is refused with a message naming the file, instead of a
 * failed start of the HTTP library.
 */
#ifndef BMS_SERVER_TLS_H
#define BMS_SERVER_TLS_H

#include "bms/base.h"

/* Largest PEM file read (a chain of a few certificates fits easily). */
#define BMS__TLS_PEM_MAX ((size_t)1 << 20)    /* bytes */

struct bms__tls_pair {
    char *cert_pem;          /* NUL-terminated file contents, owned */
    char *key_pem;
};

/*
 * Read cert_path and key_path into *out and check that the first holds
 * at least one X.509 certificate, the second a private key, and that the
 * key matches the first certificate.  Fails with BMS_ERR_INVALID when
 * only one path is given, BMS_ERR_IO when a file cannot be read (diag
 * names it and the reason), BMS_ERR_LIMIT past BMS__TLS_PEM_MAX,
 * BMS_ERR_INVALID for contents that are not a certificate or key or do
 * not match, BMS_ERR_NOMEM.
 * *out is written only on success; release it with bms__tls_pair_fini.
 * Both paths NULL is not an error: *out is left empty (no TLS).
 * Thread-safe.
 */
enum bms_status bms__tls_pair_load(const char *cert_path,
                                   const char *key_path,
                                   struct bms__tls_pair *out,
                                   struct bms_diag *diag);

/* Free the PEM texts; accepts a zeroed pair. */
void bms__tls_pair_fini(struct bms__tls_pair *pair);

#endif
