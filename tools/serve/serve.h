/* serve.h: `transit serve`, an OpenAI-compatible HTTP server that decodes many requests together
 * (design §12, docs/serve.md).
 *
 *   serve_http.c   libmicrohttpd: routes, the API key, body and queue limits, JSON and SSE answers
 *   serve_api.c    the OpenAI request fields checked into a srv_request; answers and chunks as JSON
 *   serve_text.c   a reply's growing buffer and its UTF-8 repair
 *   serve_sched.c  the scheduler thread: continuous batching over the context's sequences
 *   cmd_serve.c    options, start-up, metrics, and the shutdown on SIGINT / SIGTERM
 *
 * Threads: libmicrohttpd runs a thread per connection, which parses, submits and then waits for its
 * request (or streams it); one scheduler thread owns the model's context. They meet in srv_state
 * under one mutex: the queue, the slots' requests and each request's output. */
#ifndef TR_SERVE_H
#define TR_SERVE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "transit.h"

#define SRV_MAX_STOP 4

typedef struct srv_opts {
    const char *host;
    int port;
    int parallel;      /* sequences decoded at once (context slots) */
    int ctx_size;      /* positions per sequence */
    int queue_max;     /* requests waiting beyond the running ones; more get 503 */
    int n_batch;       /* tokens per step in all */
    int chunk;         /* prompt tokens a sequence adds per step (prefill in chunks beside decoding) */
    int max_tokens;    /* largest max_tokens a request may ask for */
    size_t max_body;   /* bytes of a request body */
    double timeout;    /* seconds a request may take, queued and running */
    const char *api_key; /* NULL: no key */
    const char *model_id; /* the name /v1/models lists and requests must use */
    tr_chat_format chat_format; /* TR_CHAT_NONE: /v1/chat/completions is refused */
    int sinks;         /* the context has attention sinks (a sequence never fills) */
    int verbose;
} srv_opts;

typedef struct srv_request {
    /* set before submission, read-only after */
    int32_t *prompt;
    int n_prompt;
    tr_sampler_params sampling;
    int max_tokens;
    char *stop[SRV_MAX_STOP];
    int n_stop;
    int stream, chat, include_usage;
    int32_t turn_end; /* a chat's end-of-turn token (-1: none) */
    char id[48];
    long created;
    double deadline; /* monotonic seconds */
    /* under srv_state.mu */
    char *out; /* the text so far (stop strings cut), NUL-terminated */
    size_t out_len, out_cap;
    size_t out_ready; /* bytes of out that may be sent: no partial UTF-8 or stop string at the end */
    size_t out_valid; /* out[0, out_valid) is well-formed UTF-8 (srv_utf8_repair) */
    int n_gen;
    int done;
    const char *finish; /* "stop" or "length" */
    int http_error;     /* nonzero: the request failed with this status and message */
    char error[200];
    int cancelled; /* the client went away: the scheduler frees its sequence at the next step */
    int refs;      /* the HTTP side and the scheduler each hold one */
    struct srv_request *next;
} srv_request;

typedef struct srv_state {
    srv_opts o;
    tr_model *model;
    tr_context *ctx;
    pthread_mutex_t mu;
    pthread_cond_t work;     /* the scheduler waits here for requests */
    pthread_cond_t progress; /* connection threads wait here for their request's output */
    srv_request *queue_head, *queue_tail;
    int n_queued;
    srv_request **slot; /* [parallel]: the request each sequence runs, or NULL */
    int n_active;
    int stopping; /* no new requests; queued ones are refused */
    int quit;     /* the scheduler ends once nothing runs */
    pthread_t scheduler;
    /* counters for /metrics, under mu */
    double t_start, busy_seconds;
    long created; /* wall-clock start, for /v1/models */
    uint64_t n_steps, prompt_tokens, gen_tokens;
    uint64_t requests[6]; /* by outcome: srv_outcome */
} srv_state;

typedef enum srv_outcome {
    SRV_OK,        /* 200 */
    SRV_BAD,       /* 4xx for the request itself (400, 401, 404, 405, 413) */
    SRV_BUSY,      /* 503: queue full or stopping */
    SRV_TIMEOUT,   /* 408 */
    SRV_CANCELLED, /* the client went away */
    SRV_FAILED,    /* 500 */
} srv_outcome;

/* serve_sched.c */
int srv_start(srv_state *s);                    /* the scheduler thread; 0 or -1 */
void srv_stop(srv_state *s, double grace);      /* refuses new work, lets running requests finish for
                                                   grace seconds, cancels the rest, joins the thread */
int srv_submit(srv_state *s, srv_request *r);   /* 0, or -1 if the queue is full or the server stops */
void srv_release(srv_state *s, srv_request *r); /* drops one reference (under no lock) */
void srv_count(srv_state *s, srv_outcome o);

/* serve_api.c: a request body parsed into r (prompt tokenized, limits checked). 0, or the HTTP
 * status to answer with and an OpenAI-style message in err. */
int srv_parse_request(srv_state *s, const char *body, size_t len, int chat, srv_request *r, char *err, size_t cap);
void srv_request_free(srv_request *r);
/* serve_text.c. Appends n bytes to a growing NUL-terminated buffer; 0, or -1 when out of memory. */
int srv_buf_append(char **buf, size_t *len, size_t *cap, const void *data, size_t n);
/* Makes (*buf)[from, *len) well-formed UTF-8 (from: a character boundary): each byte that begins no
 * valid character becomes U+FFFD, as a token of one stray byte would otherwise break the JSON. Returns
 * where an unfinished character at the end begins (it may still be completed), or *len. */
size_t srv_utf8_repair(char **buf, size_t *len, size_t *cap, size_t from);
/* JSON texts (malloc'd): a whole answer, one stream chunk of text (finish NULL) or the last one,
 * an error body, the model list. */
char *srv_json_answer(const srv_state *s, const srv_request *r, const char *text, size_t len);
char *srv_json_chunk(const srv_state *s, const srv_request *r, const char *text, size_t len, int first,
                     const char *finish);
char *srv_json_error(int status, const char *message, const char *param);
char *srv_json_models(const srv_state *s);

/* serve_http.c */
struct MHD_Daemon *srv_http_start(srv_state *s);
char *srv_metrics(srv_state *s); /* Prometheus text (cmd_serve.c) */

#endif
