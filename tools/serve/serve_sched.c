/* serve_sched.c: the scheduler thread: continuous batching over the context's sequences.
 *
 * Each step, under the lock, waiting requests take the free sequences and requests whose client
 * went away or whose time ran out leave theirs. Then, without the lock, one tr_decode advances
 * every running request: the next token of each decoding sequence first, then the prompt chunks of
 * the sequences still reading their prompts, up to n_batch tokens in all, so that a long prompt
 * shares the steps with everyone's decoding instead of stalling it. The weights are read once per
 * step for the whole batch: the reason to batch at all, decode being memory-bound. Each request's
 * sampler then picks its token, the text grows (stop strings cut, held back while they may still
 * match), and the connection threads are woken. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../cli.h"
#include "serve.h"

typedef struct slot_state { /* the scheduler's own view of a sequence (no lock needed) */
    tr_sampler *smp;
    int fed;      /* prompt tokens fed so far */
    int32_t next; /* the sampled token to feed next, once the prompt is in */
    int32_t prev; /* the last token whose text was appended (for the piece's leading space) */
} slot_state;

void srv_count(srv_state *s, srv_outcome o)
{
    pthread_mutex_lock(&s->mu);
    s->requests[o]++;
    pthread_mutex_unlock(&s->mu);
}

static void free_if_unused(srv_request *r)
{
    if (--r->refs == 0)
        srv_request_free(r);
}

void srv_release(srv_state *s, srv_request *r)
{
    pthread_mutex_lock(&s->mu);
    free_if_unused(r);
    pthread_mutex_unlock(&s->mu);
}

int srv_submit(srv_state *s, srv_request *r)
{
    pthread_mutex_lock(&s->mu);
    int ok = !s->stopping && s->n_queued < s->o.queue_max;
    if (ok) {
        r->refs = 2;
        r->next = NULL;
        if (s->queue_tail)
            s->queue_tail->next = r;
        else
            s->queue_head = r;
        s->queue_tail = r;
        s->n_queued++;
        pthread_cond_signal(&s->work);
    }
    pthread_mutex_unlock(&s->mu);
    return ok ? 0 : -1;
}

/* Ends r (under the lock): its whole text may go out, its waiter wakes. */
static void finish(srv_state *s, srv_request *r, const char *reason, int http_error, const char *msg)
{
    r->done = 1;
    r->finish = reason;
    if (http_error && !r->http_error) {
        r->http_error = http_error;
        snprintf(r->error, sizeof r->error, "%s", msg);
    }
    if (r->out_valid > r->out_len) /* cut at a stop string */
        r->out_valid = r->out_len;
    r->out_len = srv_utf8_repair(&r->out, &r->out_len, &r->out_cap, r->out_valid); /* a reply cut inside a
                                                                                       character loses it */
    r->out[r->out_len] = '\0';
    r->out_ready = r->out_len;
    pthread_cond_broadcast(&s->progress);
}

/* Appends a token's text to r (under the lock): cuts at a stop string (returns 1), and moves
 * out_ready to the end less what may still become a stop string or is an unfinished character. */
static int append_text(srv_request *r, const char *piece, size_t len)
{
    size_t old = r->out_valid;
    if (srv_buf_append(&r->out, &r->out_len, &r->out_cap, piece, len))
        return -1;
    r->out_valid = srv_utf8_repair(&r->out, &r->out_len, &r->out_cap, r->out_valid);
    size_t hold = 0;
    for (int i = 0; i < r->n_stop; i++) {
        size_t sl = strlen(r->stop[i]);
        size_t from = old >= sl ? old - sl + 1 : 0;
        char *hit = strstr(r->out + from, r->stop[i]);
        if (hit) {
            r->out_len = (size_t)(hit - r->out);
            r->out[r->out_len] = '\0';
            return 1;
        }
        for (size_t k = sl - 1; k > hold; k--) /* the longest end of out that begins stop[i] */
            if (k <= r->out_len && !memcmp(r->out + r->out_len - k, r->stop[i], k)) {
                hold = k;
                break;
            }
    }
    size_t ready = r->out_len - hold < r->out_valid ? r->out_len - hold : r->out_valid;
    if (ready > r->out_ready)
        r->out_ready = ready;
    return 0;
}

static double now(void) { return cli_now(); }

/* Under the lock: frees sequence i (its request released), ready for the next. */
static void vacate(srv_state *s, slot_state *ss, int i)
{
    srv_request *r = s->slot[i];
    tr_sampler_free(ss[i].smp);
    ss[i] = (slot_state){0};
    tr_seq_reset(s->ctx, i);
    s->slot[i] = NULL;
    s->n_active--;
    free_if_unused(r);
}

/* Under the lock: requests leave (cancelled, out of time) and join (from the queue). */
static void admit(srv_state *s, slot_state *ss)
{
    double t = now();
    for (int i = 0; i < s->o.parallel; i++) {
        srv_request *r = s->slot[i];
        if (!r)
            continue;
        if (r->cancelled) {
            finish(s, r, "stop", 0, "");
            vacate(s, ss, i);
        } else if (t > r->deadline) {
            finish(s, r, "length", 408, "the request took longer than the server's --timeout");
            vacate(s, ss, i);
        }
    }
    /* queued requests out of time or cancelled are answered without running */
    for (srv_request **p = &s->queue_head; *p;) {
        srv_request *r = *p;
        if (r->cancelled || t > r->deadline) {
            *p = r->next;
            s->n_queued--;
            finish(s, r, "stop", r->cancelled ? 0 : 408, "the request waited longer than the server's --timeout");
            free_if_unused(r);
        } else {
            p = &r->next;
        }
    }
    s->queue_tail = NULL;
    for (srv_request *r = s->queue_head; r; r = r->next)
        s->queue_tail = r;
    for (int i = 0; i < s->o.parallel && s->queue_head; i++) {
        if (s->slot[i])
            continue;
        srv_request *r = s->queue_head;
        if (tr_sampler_create(&r->sampling, tr_model_n_vocab(s->model), &ss[i].smp) != TR_OK)
            break; /* out of memory: it stays queued */
        s->queue_head = r->next;
        if (!s->queue_head)
            s->queue_tail = NULL;
        s->n_queued--;
        s->slot[i] = r;
        s->n_active++;
        ss[i].prev = r->prompt[r->n_prompt - 1]; /* the reply's first piece follows the prompt (its leading space) */
        for (int j = 0; j < r->n_prompt; j++)
            tr_sampler_accept(ss[i].smp, r->prompt[j]);
        tr_seq_set_prompt_length(s->ctx, i, r->n_prompt);
    }
}

/* One step's batch: decoding sequences' next tokens, then prompt chunks. Returns the token count. */
static int build_batch(srv_state *s, slot_state *ss, int32_t *ids, int32_t *seq, int8_t *want, int *n_prompt)
{
    int T = 0;
    *n_prompt = 0;
    for (int i = 0; i < s->o.parallel && T < s->o.n_batch; i++) {
        srv_request *r = s->slot[i];
        if (r && ss[i].fed == r->n_prompt) {
            ids[T] = ss[i].next;
            seq[T] = i;
            want[T++] = 1;
        }
    }
    for (int i = 0; i < s->o.parallel && T < s->o.n_batch; i++) {
        srv_request *r = s->slot[i];
        if (!r || ss[i].fed == r->n_prompt)
            continue;
        int n = r->n_prompt - ss[i].fed;
        n = n < s->o.chunk ? n : s->o.chunk;
        n = n < s->o.n_batch - T ? n : s->o.n_batch - T;
        for (int j = 0; j < n; j++) {
            ids[T] = r->prompt[ss[i].fed + j];
            seq[T] = i;
            want[T++] = ss[i].fed + j == r->n_prompt - 1;
        }
        *n_prompt += n;
    }
    return T;
}

/* After a step: sequence i's token from its logits (under the lock). */
static void take_token(srv_state *s, slot_state *ss, int i, const float *logits)
{
    srv_request *r = s->slot[i];
    int32_t tok = tr_sample(ss[i].smp, logits);
    if (tr_model_is_eog(s->model, tok) || tok == r->turn_end) {
        finish(s, r, "stop", 0, "");
        vacate(s, ss, i);
        return;
    }
    tr_sampler_accept(ss[i].smp, tok);
    char piece[256];
    int len = tr_token_to_piece(s->model, ss[i].prev, tok, piece, sizeof piece);
    len = len < 0 ? 0 : len < (int)sizeof piece ? len : (int)sizeof piece - 1;
    ss[i].prev = tok;
    ss[i].next = tok;
    r->n_gen++;
    s->gen_tokens++;
    int stopped = append_text(r, piece, (size_t)len);
    int full = !s->o.sinks && tr_seq_n_past(s->ctx, i) >= s->o.ctx_size; /* no room to feed it: as run stops */
    if (stopped < 0) {
        finish(s, r, "stop", 500, "out of memory for the reply");
        vacate(s, ss, i);
    } else if (stopped || r->n_gen >= r->max_tokens || full) {
        finish(s, r, stopped ? "stop" : "length", 0, "");
        vacate(s, ss, i);
    }
}

static void *scheduler(void *arg)
{
    srv_state *s = arg;
    const int P = s->o.parallel, B = s->o.n_batch;
    slot_state *ss = calloc((size_t)P, sizeof *ss);
    int32_t *ids = malloc((size_t)B * sizeof *ids), *seq = malloc((size_t)B * sizeof *seq);
    int8_t *want = malloc((size_t)B);
    if (!ss || !ids || !seq || !want) {
        pthread_mutex_lock(&s->mu);
        s->quit = 1; /* srv_stop answers what is queued */
        pthread_mutex_unlock(&s->mu);
        free(ss), free(ids), free(seq), free(want);
        return NULL;
    }
    pthread_mutex_lock(&s->mu);
    for (;;) {
        admit(s, ss);
        if (s->n_active == 0) {
            if (s->quit && !s->queue_head)
                break;
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += 1; /* wake now and then: queued requests may run out of time */
            pthread_cond_timedwait(&s->work, &s->mu, &until);
            continue;
        }
        int n_prompt;
        int T = build_batch(s, ss, ids, seq, want, &n_prompt);
        pthread_mutex_unlock(&s->mu);

        double t0 = now();
        tr_batch b = {.n_tokens = T, .ids = ids, .seq_id = seq, .logits = want};
        tr_status st = tr_decode(s->ctx, &b);
        double dt = now() - t0;

        pthread_mutex_lock(&s->mu);
        s->busy_seconds += dt;
        s->n_steps++;
        s->prompt_tokens += (uint64_t)n_prompt;
        if (st != TR_OK) { /* every request of the batch fails; the server goes on */
            const char *why = tr_last_error();
            for (int i = 0; i < P; i++)
                if (s->slot[i]) {
                    finish(s, s->slot[i], "stop", 500, why);
                    vacate(s, ss, i);
                }
            continue;
        }
        for (int t = 0; t < T;) { /* the runs of the batch, one per sequence */
            int i = seq[t], n = 0;
            while (t + n < T && seq[t + n] == i)
                n++;
            t += n;
            if (s->slot[i] && ss[i].fed < s->slot[i]->n_prompt)
                ss[i].fed += n;
            if (want[t - 1] && s->slot[i] && !s->slot[i]->cancelled)
                take_token(s, ss, i, tr_get_logits(s->ctx, t - 1));
        }
        pthread_cond_broadcast(&s->progress);
    }
    pthread_mutex_unlock(&s->mu);
    free(ss), free(ids), free(seq), free(want);
    return NULL;
}

int srv_start(srv_state *s)
{
    s->t_start = now();
    return pthread_create(&s->scheduler, NULL, scheduler, s) == 0 ? 0 : -1;
}

void srv_stop(srv_state *s, double grace)
{
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    for (srv_request *r = s->queue_head; r; r = r->next) { /* refused at the scheduler's next turn */
        r->deadline = 0;
        r->http_error = 503;
        snprintf(r->error, sizeof r->error, "the server is shutting down");
    }
    double until = now() + grace;
    while (s->n_active > 0 && now() < until) {
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        t.tv_nsec += 100 * 1000 * 1000;
        if (t.tv_nsec >= 1000000000L) {
            t.tv_sec++;
            t.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->progress, &s->mu, &t);
    }
    for (int i = 0; i < s->o.parallel; i++) /* what is left is cut short */
        if (s->slot[i] && !s->slot[i]->done) {
            s->slot[i]->http_error = s->slot[i]->http_error ? s->slot[i]->http_error : 503;
            snprintf(s->slot[i]->error, sizeof s->slot[i]->error, "the server is shutting down");
            s->slot[i]->cancelled = 1;
        }
    s->quit = 1;
    pthread_cond_broadcast(&s->work);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->scheduler, NULL);
}
