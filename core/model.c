/* model.c: tr_model: open the checkpoint, build its tokenizer, create the backend and place the
 * weights on it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "half.h"
#include "live.h"
#include "model.h"

tr_model_params tr_model_default_params(void) { return (tr_model_params){.backend = "cpu", .n_threads = 0}; }

/* A weight tensor descriptor for a validated weight of the file. */
static tr_tensor *weight(tr_model *m, const char *name)
{
    const tr_weight *w = tr_model_file_find(&m->file, name);
    if (!w) {
        tr_fail(TR_ERR_FORMAT, "%s: tensor '%s' is missing", m->file.path, name);
        return NULL;
    }
    tr_tensor *t = tr_new_tensor(&m->weights, w->dtype, w->ndim, w->ne, name);
    if (!t)
        return NULL;
    t->data = (void *)w->data; /* host memory: the mmapped file */
    t->is_weight = 1;
    m->n_params += tr_nelements(t);
    m->weight_bytes += w->nbytes;
    return t;
}

/* exp(sum_i a[i] b[i]) of two lambda vectors (validated: [head_dim] each) */
static double lambda_term(tr_model *m, int l, const char *a, const char *b)
{
    char na[64], nb[64];
    snprintf(na, sizeof na, "blk.%d.attn_lambda_%s", l, a);
    snprintf(nb, sizeof nb, "blk.%d.attn_lambda_%s", l, b);
    const tr_weight *wa = tr_model_file_find(&m->file, na), *wb = tr_model_file_find(&m->file, nb);
    double dot = 0;
    for (int64_t i = 0; i < wa->ne[0]; i++)
        dot += (double)tr_float_load(wa->dtype, wa->data, (size_t)i) * tr_float_load(wb->dtype, wb->data, (size_t)i);
    m->n_params += 2 * wa->ne[0];
    m->weight_bytes += wa->nbytes + wb->nbytes;
    return exp(dot);
}

/* Differential attention's scalars (design §4). Computed once here in double (transformers sums and
 * exponentiates in float32; the difference is far below the bounds of design §6). The lambda vectors
 * are used nowhere else, so they stay in the file and never reach a backend. */
static tr_status compute_lambdas(tr_model *m)
{
    for (int l = 0; l < m->hp.n_layers; l++) {
        tr_llama_layer *L = &m->layers[l];
        L->lambda_init = 0.8 - 0.6 * exp(-0.3 * l);
        L->lambda = lambda_term(m, l, "q1", "k1") - lambda_term(m, l, "q2", "k2") + L->lambda_init;
        if (!isfinite(L->lambda))
            return tr_fail(TR_ERR_FORMAT, "%s: layer %d's lambda vectors give lambda = %g (exp overflows)", m->file.path,
                           l, L->lambda);
    }
    return TR_OK;
}

int tr_model_diff_lambda(const tr_model *m, int layer, double *lambda, double *lambda_init)
{
    if (!m->hp.diff_attn || layer < 0 || layer >= m->hp.n_layers)
        return 0;
    *lambda = m->layers[layer].lambda;
    *lambda_init = m->layers[layer].lambda_init;
    return 1;
}

/* RoPE parameters of the model, and its divisor tensor for llama3 scaling: the GGUF's rope_freqs,
 * or computed from config.json. */
static tr_status bind_rope(tr_model *m)
{
    const tr_hparams *hp = &m->hp;
    m->rope = (tr_rope_params){.theta = hp->rope_theta, .layout = hp->rope_layout,
                               .freq_scale = hp->rope_scaling == TR_ROPE_SCALING_LINEAR ? 1.0f / hp->rope_factor : 1.0f};
    if (hp->rope_scaling != TR_ROPE_SCALING_LLAMA3)
        return TR_OK;
    if (tr_model_file_find(&m->file, "rope_freqs.weight")) {
        m->rope_freqs = weight(m, "rope_freqs.weight");
        return m->rope_freqs ? TR_OK : TR_ERR_FORMAT;
    }
    m->rope_freqs_data = malloc((size_t)(hp->head_dim / 2) * sizeof *m->rope_freqs_data);
    m->rope_freqs = tr_new_tensor_1d(&m->weights, TR_F32, hp->head_dim / 2, "rope_freqs.weight");
    if (!m->rope_freqs_data || !m->rope_freqs)
        return tr_fail(TR_ERR_NOMEM, "%s: out of memory", m->file.path);
    tr_rope_llama3_divisors(hp, m->rope_freqs_data);
    m->rope_freqs->data = m->rope_freqs_data;
    return TR_OK;
}

static tr_status bind_weights(tr_model *m)
{
    char name[96];
    TR_TRY(tr_graph_init(&m->weights));
    m->layers = calloc((size_t)m->hp.n_layers, sizeof *m->layers);
    if (!m->layers)
        return tr_fail(TR_ERR_NOMEM, "%s: out of memory", m->file.path);
    if (!(m->tok_embd = weight(m, "token_embd.weight")) || !(m->output_norm = weight(m, "output_norm.weight")))
        return TR_ERR_FORMAT;
    if (m->hp.tied_embeddings && !tr_model_file_find(&m->file, "output.weight"))
        m->output = m->tok_embd;
    else if (!(m->output = weight(m, "output.weight")))
        return TR_ERR_FORMAT;
    for (int l = 0; l < m->hp.n_layers; l++) {
        tr_llama_layer *L = &m->layers[l];
        struct {
            tr_tensor **slot;
            const char *suffix;
        } parts[] = {
            {&L->attn_norm, "attn_norm"}, {&L->wq, "attn_q"},        {&L->wk, "attn_k"},
            {&L->wv, "attn_v"},           {&L->wo, "attn_output"},   {&L->ffn_norm, "ffn_norm"},
            {&L->w_gate, "ffn_gate"},     {&L->w_up, "ffn_up"},      {&L->w_down, "ffn_down"},
        };
        for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, parts[i].suffix);
            if (!(*parts[i].slot = weight(m, name)))
                return TR_ERR_FORMAT;
        }
    }
    TR_TRY(bind_rope(m));
    return m->hp.diff_attn ? compute_lambdas(m) : TR_OK;
}

/* The largest allocation the backend allows (0: no limit), or TRANSIT_WEIGHT_BUFFER_MAX bytes when
 * that is smaller (the tests split small models with it). */
static size_t weight_buffer_max(const tr_model *m)
{
    size_t max = m->backend->iface->max_buffer_size ? m->backend->iface->max_buffer_size(m->backend) : 0;
    const char *env = getenv("TRANSIT_WEIGHT_BUFFER_MAX");
    const size_t lower = env ? (size_t)strtoull(env, NULL, 10) : 0;
    return lower > 0 && (max == 0 || lower < max) ? lower : max;
}

/* On a device backend, copy the weights into device buffers: as few as the device's largest
 * allocation allows (Vulkan drivers cap one allocation at 4 GB or less; a 7B f16 model is 13.5 GB),
 * each tensor whole in one of them, in file order. The CPU reads the mmap directly. */
static tr_status upload_weights(tr_model *m)
{
    if (m->backend->iface->buffer_from_host)
        return TR_OK;
    const size_t max = weight_buffer_max(m);
    const int n = m->weights.n_leaves;
    m->weight_buffers = calloc((size_t)(n > 0 ? n : 1), sizeof *m->weight_buffers);
    if (!m->weight_buffers)
        return tr_fail(TR_ERR_NOMEM, "out of memory");
    for (int first = 0; first < n;) {
        size_t total = 0; /* tensors [first, last) share the next buffer */
        int last = first;
        for (; last < n; last++) {
            size_t bytes = (tr_nbytes(m->weights.leaves[last]) + 255) / 256 * 256;
            if (max && total + bytes > max)
                break;
            total += bytes;
        }
        if (last == first)
            return tr_fail(TR_ERR_NOMEM, "%s: weight '%s' (%zu bytes) is larger than the largest buffer %s allows "
                           "(%zu bytes)", m->file.path, m->weights.leaves[first]->name,
                           tr_nbytes(m->weights.leaves[first]), m->backend_name, max);
        tr_buffer *buf;
        TR_TRY(m->backend->iface->buffer_alloc(m->backend, total, &buf));
        m->weight_buffers[m->n_weight_buffers++] = buf;
        size_t off = 0;
        for (int i = first; i < last; i++) {
            tr_tensor *t = m->weights.leaves[i];
            TR_TRY(m->backend->iface->upload(buf, off, t->data, tr_nbytes(t)));
            t->buffer = buf;
            t->offset = off;
            t->data = buf->host ? (char *)buf->host + off : NULL;
            off += (tr_nbytes(t) + 255) / 256 * 256;
        }
        first = last;
    }
    if (m->n_weight_buffers > 1)
        tr_log("%s: weights in %d device buffers of at most %zu bytes", m->file.path, m->n_weight_buffers, max);
    return TR_OK;
}

static tr_status load_tokenizer(tr_model *m)
{
    tr_model_file *f = &m->file;
    if (f->is_gguf) {
        if (!f->has_vocab)
            return tr_fail(TR_ERR_FORMAT, "%s: the file has no tokenizer vocabulary", f->path);
        snprintf(m->tokenizer_kind, sizeof m->tokenizer_kind, "gguf");
        tr_status s = tr_tokenizer_from_vocab(&f->vocab, &m->tok);
        return s == TR_OK ? s : tr_fail_prefix(s, f->path); /* its messages start "vocabulary: ..." */
    }
    if (!f->tokenizer_path[0])
        return tr_fail(TR_ERR_FORMAT, "%s: no tokenizer.json or tokenizer.model in the directory", f->path);
    const char *base = strrchr(f->tokenizer_path, '/');
    base = base ? base + 1 : f->tokenizer_path;
    snprintf(m->tokenizer_kind, sizeof m->tokenizer_kind, "%.31s", base);
    tr_status s = strcmp(base, "tokenizer.json") == 0 ? tr_tokenizer_load_hf_json(f->tokenizer_path, &m->tok)
                                                       : tr_tokenizer_load_spm(f->tokenizer_path, &m->tok);
    if (s == TR_OK && f->add_bos >= 0)
        tr_tokenizer_set_add_bos(m->tok, f->add_bos);
    return s;
}

tr_status tr_model_load(const char *path, const tr_model_params *params, tr_model **out)
{
    *out = NULL;
    if (!path)
        return tr_fail(TR_ERR_INVALID_ARG, "no model path given");
    tr_model_params p = params ? *params : tr_model_default_params();
    tr_model *m = calloc(1, sizeof *m);
    if (!m)
        return tr_fail(TR_ERR_NOMEM, "%s: out of memory", path);
    tr_live_add(TR_LIVE_MODEL, 1); /* tr_model_free takes it back, on every path */
    tr_status s = tr_model_file_open(path, &m->file);
    if (s == TR_OK) {
        m->hp = m->file.hp;
        s = load_tokenizer(m);
    }
    if (s == TR_OK && tr_tokenizer_n_vocab(m->tok) != m->hp.n_vocab)
        s = tr_fail(TR_ERR_FORMAT, "%s: the tokenizer has %d tokens but the model's vocabulary is %d", path,
                    tr_tokenizer_n_vocab(m->tok), m->hp.n_vocab);
    if (s == TR_OK)
        s = bind_weights(m);
    if (s == TR_OK) {
        snprintf(m->backend_name, sizeof m->backend_name, "%s", p.backend ? p.backend : "cpu");
        m->n_threads = p.n_threads;
        tr_backend_options bo = {.n_threads = p.n_threads, .device = p.device};
        s = tr_backend_create(m->backend_name, &bo, &m->backend);
    }
    if (s == TR_OK)
        s = upload_weights(m);
    if (s != TR_OK) {
        tr_model_free(m);
        return s;
    }
    tr_log("%s: %d layers, dim %d, %lld parameters, %.1f MB of weights, backend %s", path, m->hp.n_layers,
           m->hp.dim, (long long)m->n_params, (double)m->weight_bytes / 1e6, m->backend_name);
    *out = m;
    return TR_OK;
}

void tr_model_free(tr_model *m)
{
    if (!m)
        return;
    tr_live_add(TR_LIVE_MODEL, -1);
    for (int i = 0; i < m->n_weight_buffers; i++)
        m->backend->iface->buffer_free(m->weight_buffers[i]);
    free(m->weight_buffers);
    tr_backend_free(m->backend);
    tr_tokenizer_free(m->tok);
    if (m->weights.arena)
        tr_graph_free(&m->weights);
    free(m->layers);
    free(m->rope_freqs_data);
    tr_model_file_close(&m->file);
    free(m);
}

int tr_model_n_vocab(const tr_model *m) { return m->hp.n_vocab; }

int tr_model_eog_ids(const tr_model *m, int32_t *ids, int cap)
{
    int n = 0, eos = tr_tokenizer_eos(m->tok);
    if (eos >= 0 && n < cap)
        ids[n] = eos;
    n += eos >= 0;
    for (int i = 0; i < m->hp.n_eog; i++)
        if (m->hp.eog[i] != eos) {
            if (n < cap)
                ids[n] = m->hp.eog[i];
            n++;
        }
    return n;
}

int tr_model_is_eog(const tr_model *m, int32_t token)
{
    if (token >= 0 && token == tr_tokenizer_eos(m->tok))
        return 1;
    for (int i = 0; i < m->hp.n_eog; i++)
        if (m->hp.eog[i] == token)
            return 1;
    return 0;
}

double tr_model_measure_bandwidth(tr_model *m)
{
    const tr_backend_iface *f = m->backend->iface;
    if (f->read_rate && !m->n_weight_buffers) { /* weights in host memory: read them, as decode does */
        int n = 0;
        const void **ptr = malloc((size_t)m->weights.n_leaves * sizeof *ptr);
        size_t *len = malloc((size_t)m->weights.n_leaves * sizeof *len);
        for (int i = 0; ptr && len && i < m->weights.n_leaves; i++) {
            const tr_tensor *t = m->weights.leaves[i];
            if (t == m->tok_embd && m->output != m->tok_embd)
                continue; /* decode reads one row of the embedding table */
            ptr[n] = t->data;
            len[n++] = tr_nbytes(t);
        }
        double rate = n ? f->read_rate(m->backend, ptr, len, n) : 0;
        free(ptr);
        free(len);
        if (rate > 0)
            return rate;
    }
    return f->bandwidth ? f->bandwidth(m->backend) : 0;
}

/* The type of the largest matrices (the layers' projections). */
static tr_dtype weight_dtype(const tr_model *m)
{
    return m->layers && m->hp.n_layers ? m->layers[0].wq->dtype : m->tok_embd->dtype;
}

double tr_model_measure_gemm(tr_model *m, int n_tokens, int n_out, int n_in)
{
    const tr_backend_iface *f = m->backend->iface;
    return f->gemm_rate ? f->gemm_rate(m->backend, weight_dtype(m), n_tokens, n_out, n_in) : 0;
}

int tr_model_weight_types(const tr_model *m, const char **names, int *tensors, size_t *bytes, int cap)
{
    size_t by[TR_DTYPE_COUNT] = {0};
    int count[TR_DTYPE_COUNT] = {0}, n = 0;
    for (int i = 0; i < m->weights.n_leaves; i++) {
        const tr_tensor *t = m->weights.leaves[i];
        by[t->dtype] += tr_nbytes(t);
        count[t->dtype]++;
    }
    for (;;) { /* largest first */
        int best = -1;
        for (int d = 0; d < TR_DTYPE_COUNT; d++)
            if (count[d] && (best < 0 || by[d] > by[best]))
                best = d;
        if (best < 0)
            return n;
        if (n < cap) {
            names[n] = tr_dtype_name((tr_dtype)best);
            tensors[n] = count[best];
            bytes[n] = by[best];
        }
        n++;
        count[best] = 0;
    }
}

void tr_model_get_info(const tr_model *m, tr_model_info *info)
{
    const tr_hparams *hp = &m->hp;
    memset(info, 0, sizeof *info);
    info->arch = hp->arch;
    info->diff_attn = hp->diff_attn;
    info->activation = tr_activation_name(hp->act);
    info->source = m->file.is_gguf ? "gguf" : "hf";
    info->weight_type = tr_dtype_name(weight_dtype(m));
    info->n_vocab = hp->n_vocab;
    info->dim = hp->dim;
    info->n_layers = hp->n_layers;
    info->n_heads = hp->n_heads;
    info->n_kv_heads = hp->n_kv_heads;
    info->head_dim = hp->head_dim;
    info->ffn_dim = hp->ffn_dim;
    info->n_ctx_train = hp->n_ctx_train;
    info->rms_norm_eps = hp->rms_eps;
    info->rope_theta = hp->rope_theta;
    info->tied_embeddings = m->output == m->tok_embd;
    info->rope_layout = hp->rope_layout;
    static const char *const scalings[] = {"none", "linear", "llama3"};
    info->rope_scaling = scalings[hp->rope_scaling];
    info->rope_factor = hp->rope_factor;
    info->rope_low_freq_factor = hp->rope_low_freq_factor;
    info->rope_high_freq_factor = hp->rope_high_freq_factor;
    info->rope_orig_ctx = hp->rope_orig_ctx;
    info->n_params = m->n_params;
    info->weight_bytes = m->weight_bytes;
    info->decode_bytes = m->weight_bytes;
    if (m->output != m->tok_embd)
        info->decode_bytes -= tr_nbytes(m->tok_embd) - tr_nbytes(m->tok_embd) / (size_t)m->tok_embd->ne[1];
    info->bos_id = tr_tokenizer_bos(m->tok);
    info->eos_id = tr_tokenizer_eos(m->tok);
    info->add_bos = tr_tokenizer_add_bos(m->tok);
    info->tokenizer = m->tokenizer_kind;
}

/* ---- tokens --------------------------------------------------------------------------------- */

tr_status tr_tokenize(const tr_model *m, const char *text, size_t len, int add_bos, int32_t *ids, int cap, int *n)
{
    if (add_bos < 0)
        add_bos = tr_tokenizer_add_bos(m->tok);
    return tr_tokenizer_encode(m->tok, text, len, add_bos, ids, cap, n);
}

int tr_token_to_piece(const tr_model *m, int32_t prev, int32_t id, char *buf, int cap)
{
    return tr_tokenizer_piece(m->tok, prev, id, buf, cap);
}

int tr_detokenize(const tr_model *m, const int32_t *ids, int n, char *buf, int cap)
{
    return tr_tokenizer_decode(m->tok, ids, n, buf, cap);
}
