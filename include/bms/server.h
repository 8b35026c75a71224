/*
 * The HTTP server: the Open Inference Protocol (KServe v2) REST API over
 * a model repository, recording every request in the store.
 */
#ifndef BMS_SERVER_H
#define BMS_SERVER_H

#include "bms/base.h"
#include "bms/repo.h"
#include "bms/sched.h"
#include "bms/store.h"

struct bms_manager;

/* The bms release, as `GET /v2` and `bms version` report it. */
#define BMS_VERSION "0.1.0"

struct bms_server_config {
    const char *address;     /* IPv4 address to bind; NULL: 127.0.0.1 */
    int port;                /* 0 picks a free port */
    int n_threads;           /* request threads; 0: a default (64 or
                              * more with a scheduler) */
    size_t max_body_size;    /* bytes; 0: 64 MiB */
    struct bms_repo *repo;   /* borrowed, must outlive the server */
    struct bms_sched *sched; /* borrowed, may be NULL: infer on the
                              * request thread; must outlive the server */
    struct bms_store *store; /* borrowed, may be NULL */
    struct bms_manager *manager; /* borrowed, may be NULL: the repository
                              * and scheduler above are fixed; else they
                              * are ignored and models come and go
                              * through it (bms/manager.h) */
    int no_auth;             /* 1: no API keys asked, even if some exist */
    const char *tls_cert;    /* PEM file paths; both or neither: HTTPS */
    const char *tls_key;
    size_t max_header_size;  /* bytes of request line and headers; 0: a
                              * default (32 KiB) */
    int64_t max_elements;    /* tensor elements in one request; 0: a
                              * default */
    int64_t max_request_ms;  /* longest a request may take; 0: none */
    int max_client_connections;  /* open connections from one client
                              * address; 0: a default (256); -1: no
                              * limit but the server's (1024) */
    size_t cache_size;       /* bytes of the response cache over every
                              * model; 0: a default (64 MiB) */
};

struct bms_server;

/*
 * Bind config->address:port and start serving on a pool of threads.  The
 * repository and store are borrowed.  Fails with BMS_ERR_INVALID for a bad
 * address, port or thread count, BMS_ERR_IO when the socket cannot be
 * bound (the port in use), BMS_ERR_NOMEM.  *out is written on success.
 */
enum bms_status bms_server_start(const struct bms_server_config *config,
                                 struct bms_server **out,
                                 struct bms_diag *diag);

/* The port actually bound (the free one chosen when config->port was 0). */
int bms_server_port(const struct bms_server *server);

/*
 * Stop accepting, finish the requests in flight (for at most a few
 * seconds; requests that arrive meanwhile on open connections get 503),
 * free.  Every request record is queued to the store before it returns.
 * Accepts NULL.
 */
void bms_server_stop(struct bms_server *server);

#endif
