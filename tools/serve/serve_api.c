/* serve_api.c: the OpenAI API's request fields, checked one by one into a srv_request, and the
 * JSON of its answers (https://platform.openai.com/docs/api-reference: completions, chat
 * completions, their stream chunks, errors, models). A field of the wrong type, out of range or
 * unsupported is a 400 whose message names it; fields this server has no use for (user, logprobs
 * false, ...) are ignored, as OpenAI clients send them. */
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../cli.h"
#include "error.h"
#include "serve.h"

void srv_request_free(srv_request *r)
{
    if (!r)
        return;
    free(r->prompt);
    for (int i = 0; i < r->n_stop; i++)
        free(r->stop[i]);
    free(r->out);
    free(r);
}

#define BAD(...) (snprintf(err, cap, __VA_ARGS__), 400)

/* A number field in [lo, hi] (absent or null: *out unchanged). 0 or 400. */
static int num_field(const cJSON *body, const char *name, double lo, double hi, int integer, double *out, char *err,
                     size_t cap)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(body, name);
    if (!f || cJSON_IsNull(f))
        return 0;
    if (!cJSON_IsNumber(f) || !isfinite(f->valuedouble))
        return BAD("'%s' must be a number", name);
    double v = f->valuedouble;
    if (integer && v != floor(v))
        return BAD("'%s' must be an integer, got %g", name, v);
    if (v < lo || v > hi)
        return BAD("'%s' must be in [%g, %g], got %g", name, lo, hi, v);
    *out = v;
    return 0;
}

/* The prompt of a completion: a string, an array of one string, or an array of token ids. */
static int completion_prompt(srv_state *s, const cJSON *p, srv_request *r, char *err, size_t cap)
{
    if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1 && cJSON_IsString(cJSON_GetArrayItem(p, 0)))
        p = cJSON_GetArrayItem(p, 0);
    if (cJSON_IsString(p)) {
        size_t len = strlen(p->valuestring);
        int n = 0, want = (int)len + 8;
        r->prompt = malloc((size_t)want * sizeof *r->prompt);
        tr_status st = r->prompt ? tr_tokenize(s->model, p->valuestring, len, -1, r->prompt, want, &n) : TR_ERR_NOMEM;
        if (st == TR_ERR_RANGE && n > want) {
            int32_t *bigger = realloc(r->prompt, (size_t)n * sizeof *bigger);
            st = bigger ? tr_tokenize(s->model, p->valuestring, len, -1, (r->prompt = bigger), n, &n) : TR_ERR_NOMEM;
        }
        if (st != TR_OK)
            return BAD("'prompt': %s", tr_last_error());
        r->n_prompt = n;
        return 0;
    }
    if (!cJSON_IsArray(p))
        return BAD("'prompt' must be a string or an array of token ids");
    int n = cJSON_GetArraySize(p), V = tr_model_n_vocab(s->model);
    r->prompt = malloc((size_t)(n > 0 ? n : 1) * sizeof *r->prompt);
    if (!r->prompt)
        return BAD("out of memory");
    const cJSON *e;
    int i = 0;
    cJSON_ArrayForEach(e, p)
    {
        if (!cJSON_IsNumber(e) || e->valuedouble != floor(e->valuedouble) || e->valuedouble < 0 || e->valuedouble >= V)
            return BAD("'prompt'[%d] must be a token id in [0, %d) (one string, or token ids)", i, V);
        r->prompt[i++] = (int32_t)e->valuedouble;
    }
    r->n_prompt = n;
    return 0;
}

/* The messages of a chat: [{role, content}], content a string or an array of text parts. */
static int chat_prompt(srv_state *s, const cJSON *msgs, srv_request *r, char *err, size_t cap)
{
    if (s->o.chat_format == TR_CHAT_NONE)
        return BAD("this model names no chat format: start the server with --chat-template");
    if (!cJSON_IsArray(msgs) || cJSON_GetArraySize(msgs) == 0)
        return BAD("'messages' must be a non-empty array");
    int n = cJSON_GetArraySize(msgs), rc = 0;
    tr_chat_message *m = calloc((size_t)n, sizeof *m);
    char **owned = calloc((size_t)n, sizeof *owned);
    if (!m || !owned) {
        free(m);
        free(owned);
        return BAD("out of memory");
    }
    for (int i = 0; i < n && !rc; i++) {
        const cJSON *msg = cJSON_GetArrayItem(msgs, i);
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(msg, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
        if (!cJSON_IsObject(msg) || !cJSON_IsString(role)) {
            rc = BAD("'messages'[%d].role must be a string", i);
        } else if (cJSON_IsString(content)) {
            m[i] = (tr_chat_message){role->valuestring, content->valuestring};
        } else if (cJSON_IsArray(content)) { /* text parts, joined */
            size_t len = 1;
            const cJSON *part;
            cJSON_ArrayForEach(part, content)
            {
                const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
                if (!cJSON_IsString(text)) {
                    rc = BAD("'messages'[%d].content: only text parts are supported", i);
                    break;
                }
                len += strlen(text->valuestring);
            }
            if (!rc && !(owned[i] = calloc(len, 1)))
                rc = BAD("out of memory");
            for (const cJSON *q = content->child; !rc && q; q = q->next)
                strcat(owned[i], cJSON_GetObjectItemCaseSensitive(q, "text")->valuestring);
            if (!rc)
                m[i] = (tr_chat_message){role->valuestring, owned[i]};
        } else {
            rc = BAD("'messages'[%d].content must be a string or an array of text parts", i);
        }
    }
    int need = 0;
    if (!rc) {
        /* with no room given it counts the ids */
        tr_status st = tr_chat_tokenize(s->model, s->o.chat_format, m, n, TR_CHAT_GENERATION_PROMPT, NULL, 0, &need);
        if (st == TR_OK && !(r->prompt = malloc((size_t)(need > 0 ? need : 1) * sizeof *r->prompt)))
            st = tr_fail(TR_ERR_NOMEM, "out of memory");
        if (st == TR_OK)
            st = tr_chat_tokenize(s->model, s->o.chat_format, m, n, TR_CHAT_GENERATION_PROMPT, r->prompt, need,
                                  &r->n_prompt);
        if (st != TR_OK)
            rc = BAD("'messages': %s", tr_last_error());
    }
    int32_t end[8];
    int n_end = 0;
    if (!rc && tr_chat_turn_end(s->model, s->o.chat_format, end, 8, &n_end) == TR_OK && n_end > 0)
        r->turn_end = end[0];
    for (int i = 0; i < n; i++)
        free(owned[i]);
    free(owned);
    free(m);
    return rc;
}

static int stop_field(const cJSON *body, srv_request *r, char *err, size_t cap)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(body, "stop");
    if (!f || cJSON_IsNull(f))
        return 0;
    if (cJSON_IsString(f)) {
        if (!f->valuestring[0])
            return BAD("'stop' must not be empty");
        r->stop[r->n_stop++] = strdup(f->valuestring);
        return 0;
    }
    if (!cJSON_IsArray(f) || cJSON_GetArraySize(f) > SRV_MAX_STOP)
        return BAD("'stop' must be a string or an array of at most %d strings", SRV_MAX_STOP);
    const cJSON *e;
    cJSON_ArrayForEach(e, f)
    {
        if (!cJSON_IsString(e) || !e->valuestring[0])
            return BAD("'stop'[%d] must be a non-empty string", r->n_stop);
        r->stop[r->n_stop++] = strdup(e->valuestring);
    }
    return 0;
}

int srv_parse_request(srv_state *s, const char *text, size_t len, int chat, srv_request *r, char *err, size_t cap)
{
    cJSON *body = cJSON_ParseWithLength(text, len);
    if (!body)
        return BAD("the body is not valid JSON (near byte %ld)", (long)(cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() - text : 0));
    int rc = 0;
    r->turn_end = -1;
    r->chat = chat;
    r->out_cap = 256;
    r->out = calloc(r->out_cap, 1);
    /* OpenAI's defaults: temperature 1, top_p 1, no top-k or min-p */
    r->sampling = tr_sampler_default_params();
    r->sampling.temp = 1.0f;
    r->sampling.top_k = 0;
    r->sampling.top_p = 1.0f;
    r->sampling.min_p = 0.0f;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    r->sampling.seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(body, "model");
    const cJSON *stream = cJSON_GetObjectItemCaseSensitive(body, "stream");
    double max_tokens = chat ? s->o.max_tokens : 16, temp = r->sampling.temp, top_p = r->sampling.top_p, top_k = 0,
           min_p = 0, seed = -1, n = 1;
    if (!r->out)
        rc = BAD("out of memory");
    else if (!cJSON_IsObject(body))
        rc = BAD("the body must be a JSON object");
    else if (!cJSON_IsString(model))
        rc = BAD("'model' must be a string (the server's model is '%s')", s->o.model_id);
    else if (strcmp(model->valuestring, s->o.model_id))
        rc = BAD("'model': unknown model '%.60s'; this server has '%s'", model->valuestring, s->o.model_id);
    else if (stream && !cJSON_IsNull(stream) && !cJSON_IsBool(stream))
        rc = BAD("'stream' must be true or false");
    if (!rc)
        rc = num_field(body, "max_tokens", 1, s->o.max_tokens, 1, &max_tokens, err, cap);
    if (!rc && chat)
        rc = num_field(body, "max_completion_tokens", 1, s->o.max_tokens, 1, &max_tokens, err, cap);
    if (!rc)
        rc = num_field(body, "temperature", 0, 2, 0, &temp, err, cap);
    if (!rc)
        rc = num_field(body, "top_p", 0, 1, 0, &top_p, err, cap);
    if (!rc)
        rc = num_field(body, "top_k", 0, 1 << 30, 1, &top_k, err, cap);
    if (!rc)
        rc = num_field(body, "min_p", 0, 1, 0, &min_p, err, cap);
    if (!rc)
        rc = num_field(body, "seed", -9.2e18, 9.2e18, 1, &seed, err, cap);
    if (!rc)
        rc = num_field(body, "n", 1, 1, 1, &n, err, cap);
    if (!rc && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body, "logprobs")))
        rc = BAD("'logprobs' is not supported");
    if (!rc && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body, "echo")))
        rc = BAD("'echo' is not supported");
    if (!rc && cJSON_GetObjectItemCaseSensitive(body, "tools"))
        rc = BAD("'tools' is not supported");
    if (!rc)
        rc = stop_field(body, r, err, cap);
    if (!rc) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(body, chat ? "messages" : "prompt");
        if (!p)
            rc = BAD("'%s' is missing", chat ? "messages" : "prompt");
        else
            rc = chat ? chat_prompt(s, p, r, err, cap) : completion_prompt(s, p, r, err, cap);
    }
    if (!rc && r->n_prompt < 1)
        rc = BAD("'%s' is empty", chat ? "messages" : "prompt");
    if (!rc && !s->o.sinks && r->n_prompt >= s->o.ctx_size)
        rc = BAD("the prompt has %d tokens; this server's context holds %d (context_length_exceeded)", r->n_prompt,
                 s->o.ctx_size);
    if (!rc) {
        r->stream = cJSON_IsTrue(stream);
        const cJSON *so = cJSON_GetObjectItemCaseSensitive(body, "stream_options");
        r->include_usage = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(so, "include_usage"));
        r->max_tokens = (int)max_tokens;
        r->sampling.temp = (float)temp;
        r->sampling.top_p = (float)top_p;
        r->sampling.top_k = (int)top_k;
        r->sampling.min_p = (float)min_p;
        const cJSON *sf = cJSON_GetObjectItemCaseSensitive(body, "seed");
        if (sf && !cJSON_IsNull(sf)) /* else a seed from the clock */
            r->sampling.seed = (uint64_t)(int64_t)seed;
        r->created = (long)ts.tv_sec;
        static unsigned long counter;
        snprintf(r->id, sizeof r->id, "%s-%lx%06lx", chat ? "chatcmpl" : "cmpl", (unsigned long)ts.tv_sec,
                 __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED) & 0xffffff);
    }
    cJSON_Delete(body);
    return rc;
}

/* ---- answers -------------------------------------------------------------------------------- */

static char *print(cJSON *j)
{
    char *out = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    return out;
}

static cJSON *usage(const srv_request *r)
{
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", r->n_prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", r->n_gen);
    cJSON_AddNumberToObject(u, "total_tokens", r->n_prompt + r->n_gen);
    return u;
}

static cJSON *head(const srv_state *s, const srv_request *r, const char *object)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "id", r->id);
    cJSON_AddStringToObject(j, "object", object);
    cJSON_AddNumberToObject(j, "created", (double)r->created);
    cJSON_AddStringToObject(j, "model", s->o.model_id);
    return j;
}

/* text[0..len) as a JSON string item (the reply may hold NUL bytes only if the model wrote them) */
static cJSON *string_of(const char *text, size_t len)
{
    char *copy = malloc(len + 1);
    if (!copy)
        return NULL;
    memcpy(copy, text, len);
    copy[len] = '\0';
    cJSON *j = cJSON_CreateString(copy);
    free(copy);
    return j;
}

/* The answer's head and its one choice (index 0), to which the caller adds the text. */
static cJSON *with_choice(const srv_state *s, const srv_request *r, const char *object, cJSON **choice)
{
    cJSON *j = head(s, r, object);
    cJSON *choices = cJSON_AddArrayToObject(j, "choices");
    *choice = cJSON_CreateObject();
    cJSON_AddItemToArray(choices, *choice);
    cJSON_AddNumberToObject(*choice, "index", 0);
    return j;
}

char *srv_json_answer(const srv_state *s, const srv_request *r, const char *text, size_t len)
{
    cJSON *c, *j = with_choice(s, r, r->chat ? "chat.completion" : "text_completion", &c);
    if (r->chat) {
        cJSON *msg = cJSON_AddObjectToObject(c, "message");
        cJSON_AddStringToObject(msg, "role", "assistant");
        cJSON_AddItemToObject(msg, "content", string_of(text, len));
    } else {
        cJSON_AddItemToObject(c, "text", string_of(text, len));
        cJSON_AddNullToObject(c, "logprobs");
    }
    cJSON_AddStringToObject(c, "finish_reason", r->finish ? r->finish : "stop");
    cJSON_AddItemToObject(j, "usage", usage(r));
    return print(j);
}

char *srv_json_chunk(const srv_state *s, const srv_request *r, const char *text, size_t len, int first,
                     const char *finish)
{
    cJSON *c, *j = with_choice(s, r, r->chat ? "chat.completion.chunk" : "text_completion", &c);
    if (r->chat) {
        cJSON *delta = cJSON_AddObjectToObject(c, "delta");
        if (first)
            cJSON_AddStringToObject(delta, "role", "assistant");
        if (len || (first && !finish))
            cJSON_AddItemToObject(delta, "content", string_of(text, len));
    } else {
        cJSON_AddItemToObject(c, "text", string_of(text, len));
        cJSON_AddNullToObject(c, "logprobs");
    }
    if (finish) {
        cJSON_AddStringToObject(c, "finish_reason", finish);
        cJSON_AddItemToObject(j, "usage", usage(r)); /* the counts in every answer, streams too */
    } else {
        cJSON_AddNullToObject(c, "finish_reason");
    }
    return print(j);
}

char *srv_json_error(int status, const char *message, const char *param)
{
    const char *type = status == 401   ? "authentication_error"
                       : status == 404 ? "not_found_error"
                       : status == 503 ? "server_overloaded"
                       : status >= 500 ? "server_error"
                                       : "invalid_request_error";
    cJSON *j = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(j, "error");
    cJSON_AddStringToObject(e, "message", message);
    cJSON_AddStringToObject(e, "type", type);
    if (param)
        cJSON_AddStringToObject(e, "param", param);
    else
        cJSON_AddNullToObject(e, "param");
    cJSON_AddNumberToObject(e, "code", status);
    return print(j);
}

char *srv_json_models(const srv_state *s)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(j, "data"), *m = cJSON_CreateObject();
    cJSON_AddItemToArray(data, m);
    cJSON_AddStringToObject(m, "id", s->o.model_id);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)s->created);
    cJSON_AddStringToObject(m, "owned_by", "transit");
    return print(j);
}
