/*
 * HTTPS certificate and key files: read whole, then checked with GnuTLS,
 * the library libmicrohttpd does its TLS with, so that what passes here
 * is what the server will accept at start.  Nothing is kept but the PEM
 * texts; the GnuTLS objects live only during the check.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "server/tls.h"


/* Read the whole of path (at most BMS__TLS_PEM_MAX bytes) as a string;
 * what names the flag in messages ("tls_cert"). */
static enum bms_status read_pem(const char *what, const char *path,
                                char **out, struct bms_diag *diag)
{
    FILE *f = fopen(path, "rb");
    char *text = NULL;
    size_t n = 0;
    enum bms_status rc = BMS_OK;

    if (f == NULL) {
        return bms_diag_set(diag, BMS_ERR_IO, "%s '%.200s': %s", what,
                            path, strerror(errno));
    }
    text = malloc(BMS__TLS_PEM_MAX + 1);
    if (text == NULL) {
        rc = bms_diag_set(diag, BMS_ERR_NOMEM, "out of memory");
        goto out;
    }
    n = fread(text, 1, BMS__TLS_PEM_MAX + 1, f);
    if (ferror(f)) {
        rc = bms_diag_set(diag, BMS_ERR_IO, "%s '%.200s': %s", what, path,
                          strerror(errno));
    } else if (n > BMS__TLS_PEM_MAX) {
        rc = bms_diag_set(diag, BMS_ERR_LIMIT, "%s '%.200s': larger than "
                          "%zu bytes", what, path, BMS__TLS_PEM_MAX);
    } else if (n == 0) {
        rc = bms_diag_set(diag, BMS_ERR_INVALID, "%s '%.200s': empty file",
                          what, path);
    }

out:
    fclose(f);
    if (rc != BMS_OK) {
        free(text);
        return rc;
    }
    text[n] = '\0';
    *out = text;
    return BMS_OK;
}


/* Whether pem holds at least one certificate GnuTLS can parse. */
static enum bms_status check_cert(const char *path, const char *pem,
                                  struct bms_diag *diag)
{
    gnutls_x509_crt_t *certs = NULL;
    unsigned int n_certs = 0;
    gnutls_datum_t data;
    int err;

    data.data = (unsigned char *)(uintptr_t)pem;
    data.size = (unsigned int)strlen(pem);
    err = gnutls_x509_crt_list_import2(&certs, &n_certs, &data,
                                       GNUTLS_X509_FMT_PEM, 0);
    if (err < 0) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "tls_cert '%.200s': not "
                            "a PEM certificate: %s", path,
                            gnutls_strerror(err));
    }
    for (unsigned int i = 0; i < n_certs; i++) {
        gnutls_x509_crt_deinit(certs[i]);
    }
    gnutls_free(certs);
    if (n_certs == 0) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "tls_cert '%.200s': no "
                            "certificate in the file", path);
    }
    return BMS_OK;
}


/* Whether key_pem is a private key for the first certificate of
 * cert_pem, as a server credential takes them. */
static enum bms_status check_pair(const char *cert_path,
                                  const char *key_path,
                                  const struct bms__tls_pair *pair,
                                  struct bms_diag *diag)
{
    gnutls_certificate_credentials_t cred;
    gnutls_datum_t cert;
    gnutls_datum_t key;
    int err;

    if (gnutls_certificate_allocate_credentials(&cred) < 0) {
        return bms_diag_set(diag, BMS_ERR_NOMEM, "out of memory");
    }
    cert.data = (unsigned char *)pair->cert_pem;
    cert.size = (unsigned int)strlen(pair->cert_pem);
    key.data = (unsigned char *)pair->key_pem;
    key.size = (unsigned int)strlen(pair->key_pem);
    err = gnutls_certificate_set_x509_key_mem2(cred, &cert, &key,
                                               GNUTLS_X509_FMT_PEM, NULL, 0);
    gnutls_certificate_free_credentials(cred);
    if (err == GNUTLS_E_CERTIFICATE_KEY_MISMATCH) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "tls_key '%.200s': does "
                            "not match the certificate in '%.200s'",
                            key_path, cert_path);
    }
    if (err < 0) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "tls_key '%.200s': not "
                            "a usable PEM private key: %s", key_path,
                            gnutls_strerror(err));
    }
    return BMS_OK;
}


enum bms_status bms__tls_pair_load(const char *cert_path,
                                   const char *key_path,
                                   struct bms__tls_pair *out,
                                   struct bms_diag *diag)
{
    struct bms__tls_pair pair = { NULL, NULL };
    enum bms_status rc;

    if (cert_path == NULL && key_path == NULL) {
        *out = pair;
        return BMS_OK;
    }
    if (cert_path == NULL || key_path == NULL) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "%s: given without %s; "
                            "HTTPS needs both", cert_path ? "tls_cert"
                                                          : "tls_key",
                            cert_path ? "tls_key" : "tls_cert");
    }
    rc = read_pem("tls_cert", cert_path, &pair.cert_pem, diag);
    if (rc == BMS_OK) {
        rc = read_pem("tls_key", key_path, &pair.key_pem, diag);
    }
    if (rc == BMS_OK) {
        rc = check_cert(cert_path, pair.cert_pem, diag);
    }
    if (rc == BMS_OK) {
        rc = check_pair(cert_path, key_path, &pair, diag);
    }
    if (rc != BMS_OK) {
        bms__tls_pair_fini(&pair);
        return rc;
    }
    *out = pair;
    return BMS_OK;
}


void bms__tls_pair_fini(struct bms__tls_pair *pair)
{
    if (pair->key_pem != NULL) {
        /* The key is a secret: leave no copy in freed memory. */
        explicit_bzero(pair->key_pem, strlen(pair->key_pem));
    }
    free(pair->cert_pem);
    free(pair->key_pem);
    pair->cert_pem = NULL;
    pair->key_pem = NULL;
}
