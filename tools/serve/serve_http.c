/* serve_http.c: the HTTP side of `transit serve`, on libmicrohttpd with a thread per connection.
 *
 * A request's body is gathered (at most --max-body bytes: past that the rest is read and dropped,
 * and the answer is 413), then routed. Completions are parsed and submitted to the scheduler; a
 * plain request's thread waits for its answer, a stream's answer is a callback that waits for each
 * piece of text and writes it as a server-sent event, ending with `data: [DONE]`. When a client
 * goes away, libmicrohttpd drops the response: its free callback marks the request cancelled and
 * the scheduler frees the sequence at its next step. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../cli.h"
#include "serve.h"

typedef struct conn_ctx { /* one HTTP request's body, as it arrives */
    char *body;
    size_t len, cap;
    int too_large;
} conn_ctx;

static enum MHD_Result send_text(struct MHD_Connection *c, int status, char *text, const char *type)
{
    if (!text)
        text = strdup("{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"code\":500}}");
    if (!text)
        return MHD_NO;
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (status == 503)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (status == 401)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ok;
}

static enum MHD_Result send_error(srv_state *s, struct MHD_Connection *c, int status, const char *msg,
                                  const char *param)
{
    srv_count(s, status == 503 ? SRV_BUSY : status == 408 ? SRV_TIMEOUT : status >= 500 ? SRV_FAILED : SRV_BAD);
    if (s->o.verbose)
        fprintf(stderr, "transit serve: %d %s\n", status, msg);
    return send_text(c, status, srv_json_error(status, msg, param), "application/json");
}

/* "Bearer KEY" against the key, in time that does not depend on where they differ. */
static int authorized(const srv_state *s, struct MHD_Connection *c)
{
    if (!s->o.api_key)
        return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncmp(h, "Bearer ", 7))
        return 0;
    h += 7;
    size_t a = strlen(h), b = strlen(s->o.api_key), n = a > b ? a : b;
    volatile unsigned char diff = (unsigned char)(a != b);
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)((i < a ? h[i] : 0) ^ (i < b ? s->o.api_key[i] : 0));
    return diff == 0;
}

/* ---- streams -------------------------------------------------------------------------------- */

typedef struct stream_ctx {
    srv_state *s;
    srv_request *r;
    char *pend; /* events ready to go out */
    size_t pend_len, pend_cap, pend_off;
    size_t sent; /* bytes of r->out already sent */
    int first, over, ok;
} stream_ctx;

static int add_event(stream_ctx *st, char *json)
{
    int bad = !json || srv_buf_append(&st->pend, &st->pend_len, &st->pend_cap, "data: ", 6) ||
              srv_buf_append(&st->pend, &st->pend_len, &st->pend_cap, json, strlen(json)) ||
              srv_buf_append(&st->pend, &st->pend_len, &st->pend_cap, "\n\n", 2);
    free(json);
    return bad ? -1 : 0;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    stream_ctx *st = cls;
    if (st->pend_off == st->pend_len) {
        st->pend_len = st->pend_off = 0;
        if (st->over)
            return MHD_CONTENT_READER_END_OF_STREAM;
        srv_request *r = st->r;
        pthread_mutex_lock(&st->s->mu);
        while (!r->done && r->out_ready <= st->sent)
            pthread_cond_wait(&st->s->progress, &st->s->mu);
        size_t from = st->sent, len = r->out_ready - st->sent;
        char *text = malloc(len + 1);
        if (text)
            memcpy(text, r->out + from, len);
        st->sent = r->out_ready;
        int done = r->done, http_error = r->http_error;
        const char *finish = r->finish;
        char error[sizeof r->error];
        memcpy(error, r->error, sizeof error);
        pthread_mutex_unlock(&st->s->mu);
        if (!text)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        int bad = 0;
        if (len || (st->first && r->chat))
            bad |= add_event(st, srv_json_chunk(st->s, r, text, len, st->first, NULL));
        st->first = 0;
        free(text);
        if (done) {
            if (http_error) {
                bad |= add_event(st, srv_json_error(http_error, error, NULL));
            } else {
                bad |= add_event(st, srv_json_chunk(st->s, r, "", 0, 0, finish ? finish : "stop"));
                st->ok = 1;
            }
            bad |= srv_buf_append(&st->pend, &st->pend_len, &st->pend_cap, "data: [DONE]\n\n", 14);
            st->over = 1;
        }
        if (bad)
            return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = st->pend_len - st->pend_off < max ? st->pend_len - st->pend_off : max;
    memcpy(buf, st->pend + st->pend_off, n);
    st->pend_off += n;
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    stream_ctx *st = cls;
    pthread_mutex_lock(&st->s->mu);
    if (!st->r->done)
        st->r->cancelled = 1; /* the client went away: its sequence is freed at the next step */
    pthread_mutex_unlock(&st->s->mu);
    srv_count(st->s, st->ok ? SRV_OK : SRV_CANCELLED);
    srv_release(st->s, st->r);
    free(st->pend);
    free(st);
}

/* ---- completions ---------------------------------------------------------------------------- */

static enum MHD_Result completion(srv_state *s, struct MHD_Connection *c, const conn_ctx *cc, int chat)
{
    char err[256];
    srv_request *r = calloc(1, sizeof *r);
    if (!r)
        return send_error(s, c, 500, "out of memory", NULL);
    int status = srv_parse_request(s, cc->body ? cc->body : "", cc->len, chat, r, err, sizeof err);
    if (status) {
        srv_request_free(r);
        return send_error(s, c, status, err, NULL);
    }
    r->deadline = cli_now() + s->o.timeout;
    if (srv_submit(s, r)) {
        srv_request_free(r);
        return send_error(s, c, 503, "the server is busy: every sequence runs and the queue is full (retry later)",
                          NULL);
    }
    if (r->stream) {
        stream_ctx *st = calloc(1, sizeof *st);
        struct MHD_Response *resp =
            st ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, st, stream_free) : NULL;
        if (!resp) {
            free(st);
            pthread_mutex_lock(&s->mu);
            r->cancelled = 1;
            pthread_mutex_unlock(&s->mu);
            srv_release(s, r);
            return send_error(s, c, 500, "out of memory", NULL);
        }
        *st = (stream_ctx){.s = s, .r = r, .first = 1};
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        enum MHD_Result ok = MHD_queue_response(c, MHD_HTTP_OK, resp);
        MHD_destroy_response(resp);
        return ok;
    }
    pthread_mutex_lock(&s->mu);
    while (!r->done)
        pthread_cond_wait(&s->progress, &s->mu);
    pthread_mutex_unlock(&s->mu);
    enum MHD_Result ok;
    if (r->http_error) {
        ok = send_error(s, c, r->http_error, r->error, NULL);
    } else {
        srv_count(s, SRV_OK);
        ok = send_text(c, 200, srv_json_answer(s, r, r->out, r->out_len), "application/json");
    }
    srv_release(s, r);
    return ok;
}

/* ---- routing -------------------------------------------------------------------------------- */

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void)version;
    srv_state *s = cls;
    conn_ctx *cc = *con_cls;
    if (!cc) { /* the headers: the body follows in later calls */
        if (!(cc = calloc(1, sizeof *cc)))
            return MHD_NO;
        *con_cls = cc;
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (cc->too_large || cc->len + n > s->o.max_body) {
            cc->too_large = 1; /* read on and drop, so that the 413 reaches the client */
            return MHD_YES;
        }
        if (srv_buf_append(&cc->body, &cc->len, &cc->cap, upload, n))
            return MHD_NO;
        return MHD_YES;
    }
    int get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
    if (!strcmp(url, "/health")) {
        pthread_mutex_lock(&s->mu);
        int stopping = s->stopping;
        pthread_mutex_unlock(&s->mu);
        return send_text(c, stopping ? 503 : 200, strdup(stopping ? "{\"status\":\"stopping\"}" : "{\"status\":\"ok\"}"),
                         "application/json");
    }
    if (!authorized(s, c))
        return send_error(s, c, 401, "a valid API key is needed: Authorization: Bearer KEY", NULL);
    if (cc->too_large) {
        char msg[96];
        snprintf(msg, sizeof msg, "the body is larger than this server's --max-body (%zu bytes)", s->o.max_body);
        return send_error(s, c, 413, msg, NULL);
    }
    int chat = !strcmp(url, "/v1/chat/completions");
    if (chat || !strcmp(url, "/v1/completions"))
        return post ? completion(s, c, cc, chat) : send_error(s, c, 405, "use POST", NULL);
    if (!strcmp(url, "/v1/models"))
        return get ? send_text(c, 200, srv_json_models(s), "application/json") : send_error(s, c, 405, "use GET", NULL);
    if (!strcmp(url, "/metrics"))
        return get ? send_text(c, 200, srv_metrics(s), "text/plain; version=0.0.4")
                   : send_error(s, c, 405, "use GET", NULL);
    char msg[256];
    snprintf(msg, sizeof msg, "no route %.100s (this server has /v1/completions, /v1/chat/completions, /v1/models, "
             "/health, /metrics)", url);
    return send_error(s, c, 404, msg, NULL);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode why)
{
    (void)cls, (void)c, (void)why;
    conn_ctx *cc = *con_cls;
    if (cc) {
        free(cc->body);
        free(cc);
        *con_cls = NULL;
    }
}

struct MHD_Daemon *srv_http_start(srv_state *s)
{
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)s->o.port);
    if (inet_pton(AF_INET, s->o.host, &addr.sin_addr) != 1) {
        cli_fail("serve: --host must be an IPv4 address, got '%s'", s->o.host);
        return NULL;
    }
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG, (uint16_t)s->o.port, NULL,
        NULL, handle, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_NOTIFY_COMPLETED, completed, s,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)(s->o.parallel + s->o.queue_max + 64), MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)120, MHD_OPTION_END);
    if (!d)
        cli_fail("serve: cannot listen on %s:%d (in use, or not allowed)", s->o.host, s->o.port);
    return d;
}
