/* convert.c: any checkpoint transit loads, written as a GGUF file (tr_convert_to_gguf, docs/gguf.md).
 *
 * LLaMA gets the keys and tensor names llama.cpp's own converter writes, with q/k rows permuted from
 * Hugging Face's rotate-half order to the adjacent pairs GGUF uses, so that llama.cpp loads the file
 * too. DiffLlama, which no other engine runs, gets the same form under the architecture name
 * "diffllama" (keys diffllama.*), its four lambda vectors per layer as blk.N.attn_lambda_{q1,k1,q2,k2}
 * and diffllama.hidden_act: transit defines this form (design §4). The vocabulary is written as a
 * SentencePiece-style "llama" vocabulary (tokenizer.ggml.*).
 *
 * The same writer quantizes (tr_quantize, `transit quantize`): each matrix gets the type the file
 * type's mix gives it (quant_mix.c), rows are dequantized to floats if need be and quantized again
 * (core/quant.c), split among threads. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "gguf.h"
#include "gguf_write.h"
#include "half.h"
#include "model_file.h"
#include "quant.h"
#include "tokenizer.h"

/* The vocabulary to write: the GGUF's own, a tokenizer.model's, or a tokenizer.json's exported. */
static tr_status read_vocab(const tr_model_file *f, tr_vocab_spec *v)
{
    memset(v, 0, sizeof *v);
    if (f->is_gguf) {
        if (!f->has_vocab)
            return tr_fail(TR_ERR_FORMAT, "%s: the file has no tokenizer vocabulary to convert", f->path);
        *v = f->vocab; /* borrowed: the caller must not free it */
        return TR_OK;
    }
    if (!f->tokenizer_path[0])
        return tr_fail(TR_ERR_FORMAT, "%s: no tokenizer.json or tokenizer.model in the directory", f->path);
    const char *base = strrchr(f->tokenizer_path, '/');
    base = base ? base + 1 : f->tokenizer_path;
    if (strcmp(base, "tokenizer.json") != 0) {
        TR_TRY(tr_spm_read_vocab(f->tokenizer_path, v));
    } else {
        tr_tokenizer *t;
        TR_TRY(tr_tokenizer_load_hf_json(f->tokenizer_path, &t));
        tr_status s = tr_tokenizer_export_vocab(t, v);
        tr_tokenizer_free(t);
        TR_TRY(s);
    }
    if (f->add_bos >= 0)
        v->add_bos = f->add_bos;
    return TR_OK;
}

/* The checkpoint's other end-of-generation ids (Llama 3: <|eot_id|>, <|eom_id|>) as llama.cpp's
 * eot / eom keys: <|eom_id|> by its piece, any other as eot (GGUF has room for these two). */
static void put_stop_ids(tr_gguf_writer *w, const tr_hparams *hp, const tr_vocab_spec *v)
{
    int eot = -1, eom = -1;
    for (int i = 0; i < hp->n_eog; i++) {
        int id = hp->eog[i];
        if (id == v->eos_id || id < 0 || id >= v->n)
            continue;
        if (!strcmp(v->pieces[id], "<|eom_id|>") && eom < 0)
            eom = id;
        else if (eot < 0)
            eot = id;
    }
    if (eot >= 0)
        tr_gguf_put_u32(w, "tokenizer.ggml.eot_token_id", (uint32_t)eot);
    if (eom >= 0)
        tr_gguf_put_u32(w, "tokenizer.ggml.eom_token_id", (uint32_t)eom);
}

/* A SentencePiece-style vocabulary as llama.cpp's "llama" model (scores), a byte-level one (Llama 3)
 * as its "gpt2" model (merges, and the pre-tokenizer's name, "llama-bpe"). */
static void put_vocab(tr_gguf_writer *w, const tr_vocab_spec *v, const tr_model_file *f)
{
    int bpe = v->model == TR_VOCAB_BPE;
    tr_gguf_put_str(w, "tokenizer.ggml.model", bpe ? "gpt2" : "llama");
    tr_gguf_put_str(w, "tokenizer.ggml.pre", bpe ? v->pre : "default");
    tr_gguf_put_str_array(w, "tokenizer.ggml.tokens", (const char *const *)v->pieces, (size_t)v->n);
    if (bpe)
        tr_gguf_put_str_array(w, "tokenizer.ggml.merges", (const char *const *)v->merges, (size_t)v->n_merges);
    else
        tr_gguf_put_f32_array(w, "tokenizer.ggml.scores", v->scores, (size_t)v->n);
    tr_gguf_put_i32_array(w, "tokenizer.ggml.token_type", v->types, (size_t)v->n);
    if (v->bos_id >= 0)
        tr_gguf_put_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)v->bos_id);
    if (v->eos_id >= 0)
        tr_gguf_put_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)v->eos_id);
    if (v->unk_id >= 0)
        tr_gguf_put_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)v->unk_id);
    if (f->hp.pad_id >= 0 && f->hp.pad_id < v->n)
        tr_gguf_put_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)f->hp.pad_id);
    tr_gguf_put_bool(w, "tokenizer.ggml.add_bos_token", v->add_bos);
    tr_gguf_put_bool(w, "tokenizer.ggml.add_eos_token", 0);
    tr_gguf_put_bool(w, "tokenizer.ggml.add_sep_token", 0);
    if (!bpe) /* SentencePiece's dummy prefix (byte-level vocabularies have none) */
        tr_gguf_put_bool(w, "tokenizer.ggml.add_space_prefix", !v->no_space_prefix);
    if (f->chat_template)
        tr_gguf_put_str(w, "tokenizer.chat_template", f->chat_template);
}

static void put_hparams(tr_gguf_writer *w, const tr_hparams *hp, const char *name, uint32_t ftype)
{
    char key[96];
#define KEY(suffix) (snprintf(key, sizeof key, "%s.%s", hp->arch, suffix), key)
    tr_gguf_put_str(w, "general.architecture", hp->arch);
    tr_gguf_put_str(w, "general.name", name);
    tr_gguf_put_u32(w, "general.file_type", ftype);
    tr_gguf_put_u32(w, "general.quantization_version", 2); /* ggml's, written by every llama.cpp converter */
    tr_gguf_put_u32(w, KEY("vocab_size"), (uint32_t)hp->n_vocab);
    tr_gguf_put_u32(w, KEY("context_length"), (uint32_t)hp->n_ctx_train);
    tr_gguf_put_u32(w, KEY("embedding_length"), (uint32_t)hp->dim);
    tr_gguf_put_u32(w, KEY("block_count"), (uint32_t)hp->n_layers);
    tr_gguf_put_u32(w, KEY("feed_forward_length"), (uint32_t)hp->ffn_dim);
    tr_gguf_put_u32(w, KEY("rope.dimension_count"), (uint32_t)hp->head_dim);
    tr_gguf_put_u32(w, KEY("attention.head_count"), (uint32_t)hp->n_heads);
    tr_gguf_put_u32(w, KEY("attention.head_count_kv"), (uint32_t)hp->n_kv_heads);
    tr_gguf_put_u32(w, KEY("attention.key_length"), (uint32_t)hp->head_dim);
    tr_gguf_put_u32(w, KEY("attention.value_length"), (uint32_t)hp->head_dim);
    tr_gguf_put_f32(w, KEY("rope.freq_base"), hp->rope_theta);
    tr_gguf_put_f32(w, KEY("attention.layer_norm_rms_epsilon"), hp->rms_eps);
    if (hp->rope_scaling == TR_ROPE_SCALING_LINEAR) { /* llama3's is the rope_freqs tensor */
        tr_gguf_put_str(w, KEY("rope.scaling.type"), "linear");
        tr_gguf_put_f32(w, KEY("rope.scaling.factor"), hp->rope_factor);
    }
    /* transit's key; llama.cpp's LLaMA has silu built in and ignores it */
    if (hp->diff_attn || hp->act != TR_ACT_SILU)
        tr_gguf_put_str(w, KEY("hidden_act"), tr_activation_name(hp->act));
#undef KEY
}

/* The tensors in the order they are written; the per-layer suffixes of model_file.h. */
static const char *const layer_parts[] = {
    "attn_norm.weight", "attn_q.weight",  "attn_k.weight",    "attn_v.weight",  "attn_output.weight",
    "ffn_norm.weight",  "ffn_gate.weight", "ffn_up.weight",   "ffn_down.weight", "attn_lambda_q1",
    "attn_lambda_k1",   "attn_lambda_q2",  "attn_lambda_k2",
};
#define N_PARTS (int)(sizeof layer_parts / sizeof layer_parts[0])

/* Tensor i of the output: a weight of the file, or for llama3 RoPE scaling from a Hugging Face
 * directory the divisors computed into *freqs (a weight-shaped view of them). */
static const tr_weight *nth_weight(const tr_model_file *f, int i, tr_weight *freqs)
{
    char name[96];
    if (i == 0)
        return tr_model_file_find(f, "token_embd.weight");
    i--;
    if (i < f->hp.n_layers * N_PARTS) {
        snprintf(name, sizeof name, "blk.%d.%s", i / N_PARTS, layer_parts[i % N_PARTS]);
        return tr_model_file_find(f, name);
    }
    i -= f->hp.n_layers * N_PARTS;
    if (i < 2)
        return tr_model_file_find(f, i == 0 ? "output_norm.weight" : "output.weight");
    const tr_weight *w = tr_model_file_find(f, "rope_freqs.weight");
    return w ? w : f->hp.rope_scaling == TR_ROPE_SCALING_LLAMA3 ? freqs : NULL;
}

/* Matrices take the file type's choice (NULL: keep their own); vectors (norms, lambdas) stay f32, as
 * llama.cpp keeps them. */
static tr_dtype out_type(const tr_model_file *f, const tr_weight *w, const tr_file_type *ft)
{
    if (w->ndim == 1)
        return TR_F32;
    if (!ft)
        return w->dtype;
    return tr_file_type_of(ft, w->name, w->ne[0], f->hp.n_layers, tr_model_file_find(f, "output.weight") == NULL);
}

/* One row of any type to floats, and floats to any type. */
static void row_to_f32(tr_dtype t, const void *src, float *dst, int64_t n)
{
    if (tr_dtype_is_quant(t))
        tr_dequantize_row(t, src, dst, n);
    else
        for (int64_t i = 0; i < n; i++)
            dst[i] = tr_float_load(t, src, (size_t)i);
}

static void row_from_f32(tr_dtype t, const float *src, void *dst, int64_t n)
{
    if (tr_dtype_is_quant(t))
        tr_quantize_row(t, src, dst, n);
    else
        for (int64_t i = 0; i < n; i++)
            tr_float_store(t, dst, (size_t)i, src[i]);
}

/* Rotate-half q/k rows in adjacent-pair order: within each head, GGUF row 2i + j is HF row
 * j * hd/2 + i (llama.cpp's converter permutes the same way). Other tensors keep their rows. */
static int64_t source_row(const tr_hparams *hp, int permute, int64_t r)
{
    if (!permute)
        return r;
    int64_t hd = hp->head_dim, h = r / hd, k = r % hd;
    return h * hd + (k % 2) * (hd / 2) + k / 2;
}

typedef struct rows_job {
    const tr_model_file *f;
    const tr_weight *wt;
    tr_dtype dt;
    int permute, n_threads, thread;
    char *out;
    int failed;
} rows_job;

/* Rows thread, thread + n_threads, ... of the tensor, converted into out. */
static void *convert_rows(void *arg)
{
    rows_job *j = arg;
    const tr_weight *wt = j->wt;
    int64_t cols = wt->ne[0], rows = wt->ndim > 1 ? wt->ne[1] : 1;
    size_t in_row = tr_row_bytes(wt->dtype, cols), out_row = tr_row_bytes(j->dt, cols);
    float *tmp = j->dt == wt->dtype ? NULL : malloc((size_t)cols * sizeof *tmp);
    if (j->dt != wt->dtype && !tmp) {
        j->failed = 1;
        return NULL;
    }
    for (int64_t r = j->thread; r < rows; r += j->n_threads) {
        const char *src = (const char *)wt->data + (size_t)source_row(&j->f->hp, j->permute, r) * in_row;
        char *dst = j->out + (size_t)r * out_row;
        if (!tmp) {
            memcpy(dst, src, out_row);
            continue;
        }
        row_to_f32(wt->dtype, src, tmp, cols);
        row_from_f32(j->dt, tmp, dst, cols);
    }
    free(tmp);
    return NULL;
}

static tr_status write_tensor(tr_gguf_writer *w, const tr_model_file *f, const tr_weight *wt, tr_dtype dt,
                              int n_threads)
{
    size_t n = strlen(wt->name);
    int qk = n > 13 && (!strcmp(wt->name + n - 13, "attn_q.weight") || !strcmp(wt->name + n - 13, "attn_k.weight"));
    int permute = qk && f->hp.rope_layout == TR_ROPE_HALF;
    int64_t rows = wt->ndim > 1 ? wt->ne[1] : 1;
    size_t nbytes = tr_row_bytes(dt, wt->ne[0]) * (size_t)rows;
    char *out = malloc(nbytes ? nbytes : 1);
    if (!out)
        return tr_fail(TR_ERR_NOMEM, "%s: out of memory converting '%s'", f->path, wt->name);
    /* quantizing is the slow part: threads share the rows; copies and float casts need none */
    enum { MAX_THREADS = 64 };
    int threads = tr_dtype_is_quant(dt) && dt != wt->dtype ? n_threads : 1;
    if (threads > rows)
        threads = (int)rows;
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    rows_job jobs[MAX_THREADS];
    pthread_t tid[MAX_THREADS];
    int started = 0, failed = 0;
    for (int t = 0; t < threads; t++)
        jobs[t] = (rows_job){f, wt, dt, permute, threads, t, out, 0};
    for (int t = 1; t < threads; t++, started++)
        if (pthread_create(&tid[t], NULL, convert_rows, &jobs[t]) != 0)
            break;
    for (int t = started + 1; t < threads; t++) /* a thread that would not start: its rows here */
        convert_rows(&jobs[t]);
    convert_rows(&jobs[0]);
    for (int t = 1; t <= started; t++)
        pthread_join(tid[t], NULL);
    for (int t = 0; t < threads; t++)
        failed |= jobs[t].failed;
    tr_status s = failed ? tr_fail(TR_ERR_NOMEM, "%s: out of memory converting '%s'", f->path, wt->name)
                         : tr_gguf_write_data(w, out, nbytes);
    free(out);
    return s;
}

/* general.name: the last component of the path ("dir/" and "dir" alike), without ".gguf". */
static const char *model_name(const char *path)
{
    static _Thread_local char name[256];
    size_t end = strlen(path);
    while (end > 1 && path[end - 1] == '/')
        end--;
    size_t start = end;
    while (start > 0 && path[start - 1] != '/')
        start--;
    snprintf(name, sizeof name, "%.*s", (int)(end - start), path + start);
    size_t n = strlen(name);
    if (n > 5 && !strcmp(name + n - 5, ".gguf"))
        name[n - 5] = 0;
    return name;
}

tr_status tr_quantize(const char *in, const char *out_path, const char *type_name, int n_threads,
                      void (*progress)(int done, int total, void *arg), void *arg)
{
    tr_file_type ft;
    int keep = !type_name; /* every matrix keeps its type */
    if (!keep)
        TR_TRY(tr_file_type_parse(type_name, &ft));
    if (n_threads < 1)
        n_threads = 1;
    tr_model_file f;
    TR_TRY(tr_model_file_open(in, &f));
    tr_status s = TR_OK;
    const tr_weight *embd = tr_model_file_find(&f, "token_embd.weight");
    uint32_t ftype = keep ? tr_file_type_uniform(embd->dtype) : ft.ftype;
    tr_vocab_spec vocab;
    memset(&vocab, 0, sizeof vocab);
    if (s == TR_OK)
        s = read_vocab(&f, &vocab);
    /* llama3 RoPE scaling from config.json: llama.cpp's rope_freqs.weight, computed here */
    float *divisors = malloc((size_t)(f.hp.head_dim / 2 + 1) * sizeof *divisors);
    tr_weight freqs = {.name = "rope_freqs.weight", .dtype = TR_F32, .ndim = 1, .ne = {f.hp.head_dim / 2, 1, 1, 1},
                       .data = divisors, .nbytes = (size_t)(f.hp.head_dim / 2) * sizeof(float)};
    if (s == TR_OK && !divisors)
        s = tr_fail(TR_ERR_NOMEM, "%s: out of memory", in);
    if (s == TR_OK && f.hp.rope_scaling == TR_ROPE_SCALING_LLAMA3)
        tr_rope_llama3_divisors(&f.hp, divisors);
    tr_gguf_writer *w = NULL;
    if (s == TR_OK)
        s = tr_gguf_writer_open(out_path, &w);
    if (s == TR_OK) {
        put_hparams(w, &f.hp, model_name(in), ftype);
        put_vocab(w, &vocab, &f);
        put_stop_ids(w, &f.hp, &vocab);
        int total = 1 + f.hp.n_layers * N_PARTS + 3;
        for (int i = 0; i < total; i++) {
            const tr_weight *wt = nth_weight(&f, i, &freqs);
            if (!wt)
                continue; /* tied output, or the lambdas of a LLaMA */
            tr_dtype dt = out_type(&f, wt, keep ? NULL : &ft);
            tr_gguf_add_tensor(w, wt->name, tr_dtype_to_ggml(dt), wt->ndim, wt->ne,
                               tr_row_bytes(dt, wt->ne[0]) * (size_t)(wt->ndim > 1 ? wt->ne[1] : 1));
        }
        s = tr_gguf_write_header(w);
        for (int i = 0; s == TR_OK && i < total; i++) {
            const tr_weight *wt = nth_weight(&f, i, &freqs);
            if (wt)
                s = write_tensor(w, &f, wt, out_type(&f, wt, keep ? NULL : &ft), n_threads);
            if (progress)
                progress(i + 1, total, arg);
        }
        tr_status c = tr_gguf_writer_close(w);
        s = s == TR_OK ? c : s;
    }
    if (!f.is_gguf)
        tr_vocab_spec_free(&vocab);
    free(divisors);
    tr_model_file_close(&f);
    return s;
}

tr_status tr_convert_to_gguf(const char *in, const char *out, const char *type,
                             void (*progress)(int done, int total, void *arg), void *arg)
{
    if (type && strcmp(type, "f32") && strcmp(type, "f16") && strcmp(type, "bf16"))
        return tr_fail(TR_ERR_INVALID_ARG, "convert: type '%s' is not one of f32, f16, bf16 (transit quantize writes "
                       "the quantized types)", type);
    return tr_quantize(in, out, type, 1, progress, arg);
}
