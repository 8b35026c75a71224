/*
 * A fixed-rate HTTP load generator for bench/http_nginx.sh.
 *
 * It POSTs one body to one path at a steady rate over a few keep-alive
 * connections and records each request's latency.  Request i is due at
 * start + i / rate whether or not the server kept up; when every
 * connection is busy it waits in a queue on the client side.  Latency is
 * counted from the due time (so a slow answer also delays the requests
 * queued behind it, as it would for real clients arriving at that rate)
 * and, apart, from the moment the request was written (service time).
 *
 *   paced PORT PATH BODY_FILE RATE SECONDS CONNS [WARMUP_SECONDS
 *         [JSON_LENGTH]]
 *
 * With JSON_LENGTH the body is a binary-data request: its first
 * JSON_LENGTH bytes are the JSON part, sent with
 * Inference-Header-Content-Length and Content-Type
 * application/octet-stream.
 *
 * Talks to 127.0.0.1 only.  Prints one line starting with BMS_PACED.
 * Build: cc -std=c11 -O2 -o paced bench/paced.c
 */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#define MAX_CONNS 1024
#define READ_CHUNK 65536
#define DRAIN_US 5000000

struct conn {
    int fd;
    int busy;
    int64_t index;
    int64_t sent_us;
    size_t written;
    char *rbuf;
    size_t rlen;
    size_t rcap;
};

struct paced {
    int port;
    char *request;
    size_t request_len;
    double rate;
    int64_t total;
    int64_t warmup;
    int64_t start_us;
    int64_t scheduled;
    int64_t assigned;
    int64_t done;
    int64_t errors;
    int64_t late_sum_us;
    int64_t n_recorded;
    int64_t *latency_us;
    int64_t *service_us;
    int epfd;
    int n_conns;
    struct conn conns[MAX_CONNS];
};


static int64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}


static int64_t due_us(const struct paced *p, int64_t index)
{
    return p->start_us + (int64_t)((double)index * 1e6 / p->rate);
}


/*
 * Connects one socket to 127.0.0.1:port (blocking, then switched to
 * non-blocking); returns the fd or -1.
 */
static int conn_open(int port)
{
    struct sockaddr_in sin;
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0) {
        return -1;
    }
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}


/* (Re)opens connection c and registers it; returns 0 or -1. */
static int conn_reset(struct paced *p, struct conn *c)
{
    struct epoll_event ev;

    if (c->fd >= 0) {
        epoll_ctl(p->epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = conn_open(p->port);
    c->busy = 0;
    c->rlen = 0;
    c->written = 0;
    if (c->fd < 0) {
        return -1;
    }
    memset(&ev, 0, sizeof(ev));
    /* Edge-triggered: reads and writes go on until EAGAIN. */
    ev.events = EPOLLIN | EPOLLOUT | EPOLLET;
    ev.data.ptr = c;
    return epoll_ctl(p->epfd, EPOLL_CTL_ADD, c->fd, &ev);
}


/* Writes what the socket takes of the current request. */
static int conn_write(struct paced *p, struct conn *c)
{
    while (c->written < p->request_len) {
        ssize_t n = write(c->fd, p->request + c->written,
                          p->request_len - c->written);

        if (n < 0) {
            return errno == EAGAIN ? 0 : -1;
        }
        c->written += (size_t)n;
    }
    return 0;
}


static void conn_start(struct paced *p, struct conn *c)
{
    int64_t t = now_us();

    c->busy = 1;
    c->index = p->assigned++;
    c->sent_us = t;
    c->written = 0;
    c->rlen = 0;
    if (c->index >= p->warmup) {
        p->late_sum_us += t - due_us(p, c->index);
    }
    if (conn_write(p, c) != 0) {
        p->errors++;
        p->done++;
        conn_reset(p, c);
    }
}


/*
 * Looks for one whole response in c->rbuf.  Returns its length, 0 when
 * more bytes are needed, -1 for something that is not a response.  Sets
 * *status to the status code.
 */
static long response_length(const struct conn *c, int *status)
{
    const char *end;
    const char *line;
    long content_length = -1;

    if (c->rlen < 12) {
        return 0;
    }
    end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
    if (end == NULL) {
        return 0;
    }
    if (strncmp(c->rbuf, "HTTP/1.", 7) != 0) {
        return -1;
    }
    *status = (int)strtol(c->rbuf + 9, NULL, 10);
    line = (const char *)memchr(c->rbuf, '\n',
                                (size_t)(end + 2 - c->rbuf)) + 1;
    while (line < end) {
        const char *next = memchr(line, '\n', (size_t)(end + 2 - line));

        if (strncasecmp(line, "content-length:", 15) == 0) {
            content_length = strtol(line + 15, NULL, 10);
        }
        line = next + 1;
    }
    if (content_length < 0) {
        return -1;
    }
    if (c->rlen < (size_t)(end + 4 - c->rbuf) + (size_t)content_length) {
        return 0;
    }
    return (long)(end + 4 - c->rbuf) + content_length;
}


static void conn_finish(struct paced *p, struct conn *c, int ok)
{
    int64_t t = now_us();

    p->done++;
    if (!ok) {
        p->errors++;
    } else if (c->index >= p->warmup) {
        p->latency_us[p->n_recorded] = t - due_us(p, c->index);
        p->service_us[p->n_recorded] = t - c->sent_us;
        p->n_recorded++;
    }
    c->busy = 0;
    c->rlen = 0;
}


static void conn_read(struct paced *p, struct conn *c)
{
    for (;;) {
        ssize_t n;
        long len;
        int status = 0;

        if (c->rcap - c->rlen < READ_CHUNK) {
            c->rcap = c->rlen + 2 * READ_CHUNK;
            c->rbuf = realloc(c->rbuf, c->rcap);
            if (c->rbuf == NULL) {
                fprintf(stderr, "paced: out of memory\n");
                exit(1);
            }
        }
        n = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
        if (n < 0 && errno == EAGAIN) {
            return;
        }
        if (n <= 0) {
            if (c->busy) {
                conn_finish(p, c, 0);
            }
            conn_reset(p, c);
            return;
        }
        c->rlen += (size_t)n;
        len = response_length(c, &status);
        if (len < 0 || (len > 0 && (size_t)len != c->rlen) ||
            (len > 0 && !c->busy)) {
            if (c->busy) {
                conn_finish(p, c, 0);
            }
            conn_reset(p, c);
            return;
        }
        if (len > 0) {
            conn_finish(p, c, status == 200);
        }
    }
}


/* Hands due requests to idle connections. */
static void assign(struct paced *p)
{
    int i;

    for (i = 0; i < p->n_conns && p->assigned < p->scheduled; i++) {
        struct conn *c = &p->conns[i];

        if (!c->busy && c->fd >= 0) {
            conn_start(p, c);
        }
    }
}


static int compare_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a;
    int64_t y = *(const int64_t *)b;

    return (x > y) - (x < y);
}


static int64_t percentile(const int64_t *v, int64_t n, double q)
{
    int64_t k;

    if (n == 0) {
        return 0;
    }
    k = (int64_t)(q / 100.0 * (double)n);
    if (k >= n) {
        k = n - 1;
    }
    return v[k];
}


static char *read_body(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *data = NULL;
    long n;

    if (f == NULL) {
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
        fseek(f, 0, SEEK_SET) == 0) {
        data = malloc((size_t)n + 1);
        if (data != NULL && fread(data, 1, (size_t)n, f) != (size_t)n) {
            free(data);
            data = NULL;
        }
        *len = (size_t)n;
    }
    fclose(f);
    return data;
}


static int build_request(struct paced *p, const char *path,
                         const char *body_file, long json_len)
{
    size_t body_len = 0;
    char *body = read_body(body_file, &body_len);
    char head[512];
    char type[128];
    int n;

    if (body == NULL) {
        return -1;
    }
    if (json_len > 0) {
        snprintf(type, sizeof(type), "application/octet-stream\r\n"
                 "Inference-Header-Content-Length: %ld", json_len);
    } else {
        snprintf(type, sizeof(type), "application/json");
    }
    n = snprintf(head, sizeof(head), "POST %s HTTP/1.1\r\n"
                 "Host: 127.0.0.1:%d\r\nContent-Type: %s\r\n"
                 "Content-Length: %zu\r\n\r\n", path, p->port, type,
                 body_len);
    if (n < 0 || (size_t)n >= sizeof(head)) {
        free(body);
        return -1;
    }
    p->request_len = (size_t)n + body_len;
    p->request = malloc(p->request_len);
    if (p->request == NULL) {
        free(body);
        return -1;
    }
    memcpy(p->request, head, (size_t)n);
    memcpy(p->request + n, body, body_len);
    free(body);
    return 0;
}


static int start_timer(double rate)
{
    struct itimerspec its;
    long period_ns = (long)(1e9 / rate);
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);

    if (fd < 0) {
        return -1;
    }
    if (period_ns < 1000) {
        period_ns = 1000;
    }
    memset(&its, 0, sizeof(its));
    its.it_interval.tv_sec = period_ns / 1000000000L;
    its.it_interval.tv_nsec = period_ns % 1000000000L;
    its.it_value = its.it_interval;
    if (timerfd_settime(fd, 0, &its, NULL) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}


static void report(struct paced *p, int64_t elapsed_us)
{
    int64_t n = p->n_recorded;
    int64_t measured = p->total - p->warmup;

    qsort(p->latency_us, (size_t)n, sizeof(int64_t), compare_i64);
    qsort(p->service_us, (size_t)n, sizeof(int64_t), compare_i64);
    printf("BMS_PACED rate=%.1f achieved_rps=%.1f sent=%lld ok=%lld "
           "errors=%lld unfinished=%lld p50_us=%lld p90_us=%lld "
           "p99_us=%lld p999_us=%lld max_us=%lld service_p50_us=%lld "
           "service_p99_us=%lld mean_late_us=%.1f\n",
           p->rate, (double)p->done * 1e6 / (double)elapsed_us,
           (long long)p->assigned, (long long)n, (long long)p->errors,
           (long long)(p->total - p->done),
           (long long)percentile(p->latency_us, n, 50),
           (long long)percentile(p->latency_us, n, 90),
           (long long)percentile(p->latency_us, n, 99),
           (long long)percentile(p->latency_us, n, 99.9),
           (long long)(n > 0 ? p->latency_us[n - 1] : 0),
           (long long)percentile(p->service_us, n, 50),
           (long long)percentile(p->service_us, n, 99),
           measured > 0 ? (double)p->late_sum_us / (double)measured : 0.0);
}


static int run(struct paced *p)
{
    struct epoll_event ev;
    struct epoll_event events[64];
    int tfd = start_timer(p->rate);
    int64_t end_us;
    int i;

    if (tfd < 0) {
        return -1;
    }
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.ptr = NULL;
    epoll_ctl(p->epfd, EPOLL_CTL_ADD, tfd, &ev);
    p->start_us = now_us();
    end_us = due_us(p, p->total) + DRAIN_US;
    while (p->done < p->total && now_us() < end_us) {
        int n = epoll_wait(p->epfd, events, 64, 100);

        for (i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;

            if (c == NULL) {
                uint64_t ticks;

                if (read(tfd, &ticks, sizeof(ticks)) == sizeof(ticks)) {
                    int64_t t = now_us();

                    /* Every request whose due time has come. */
                    while (p->scheduled < p->total &&
                           due_us(p, p->scheduled) <= t) {
                        p->scheduled++;
                    }
                }
                continue;
            }
            if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                conn_read(p, c);
            }
            if (c->busy && c->written < p->request_len &&
                (events[i].events & EPOLLOUT) && conn_write(p, c) != 0) {
                conn_finish(p, c, 0);
                conn_reset(p, c);
            }
        }
        assign(p);
    }
    report(p, now_us() - p->start_us);
    close(tfd);
    return 0;
}


int main(int argc, char **argv)
{
    struct paced *p;
    double seconds;
    double warmup_s = argc > 7 ? strtod(argv[7], NULL) : 0.0;
    long json_len = argc > 8 ? strtol(argv[8], NULL, 10) : 0;
    int i;
    int rc = 1;

    if (argc < 7 || argc > 9) {
        fprintf(stderr, "usage: paced PORT PATH BODY_FILE RATE SECONDS "
                "CONNS [WARMUP_SECONDS [JSON_LENGTH]]\n");
        return 2;
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return 1;
    }
    /* Garbage parses as 0 and is refused below. */
    p->port = (int)strtol(argv[1], NULL, 10);
    p->rate = strtod(argv[4], NULL);
    seconds = strtod(argv[5], NULL);
    p->n_conns = (int)strtol(argv[6], NULL, 10);
    if (p->port <= 0 || p->port > 65535 || p->rate <= 0 || seconds <= 0 ||
        p->n_conns < 1 || p->n_conns > MAX_CONNS || warmup_s < 0 ||
        json_len < 0) {
        fprintf(stderr, "paced: bad arguments\n");
        goto out;
    }
    if (build_request(p, argv[2], argv[3], json_len) != 0) {
        fprintf(stderr, "paced: cannot read %s\n", argv[3]);
        goto out;
    }
    p->warmup = (int64_t)(warmup_s * p->rate);
    p->total = p->warmup + (int64_t)(seconds * p->rate);
    p->latency_us = calloc((size_t)p->total + 1, sizeof(int64_t));
    p->service_us = calloc((size_t)p->total + 1, sizeof(int64_t));
    p->epfd = epoll_create1(0);
    if (p->latency_us == NULL || p->service_us == NULL || p->epfd < 0) {
        fprintf(stderr, "paced: out of memory\n");
        goto out;
    }
    for (i = 0; i < p->n_conns; i++) {
        p->conns[i].fd = -1;
        if (conn_reset(p, &p->conns[i]) != 0) {
            fprintf(stderr, "paced: cannot connect to 127.0.0.1:%d\n",
                    p->port);
            goto out;
        }
    }
    rc = run(p) == 0 ? 0 : 1;
out:
    for (i = 0; i < p->n_conns; i++) {
        if (p->conns[i].fd >= 0) {
            close(p->conns[i].fd);
        }
        free(p->conns[i].rbuf);
    }
    if (p->epfd > 0) {
        close(p->epfd);
    }
    free(p->latency_us);
    free(p->service_us);
    free(p->request);
    free(p);
    return rc;
}
