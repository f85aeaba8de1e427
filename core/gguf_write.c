/* gguf_write.c: the GGUF v3 writer (gguf_write.h). Little-endian, as the format and every machine
 * transit runs on are. */
#include "gguf_write.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "out_file.h"
#include "gguf.h"

#define ALIGNMENT 32 /* general.alignment's default: not written, so every reader agrees */

typedef struct tensor_info {
    char *name;
    uint32_t type;
    int ndim;
    int64_t ne[4];
    size_t nbytes;
    uint64_t offset;
} tensor_info;

struct tr_gguf_writer {
    char path[1024];
    tr_out_file out; /* a temporary file renamed onto path when complete (out_file.h) */
    FILE *f;
    tr_status status; /* the first failure */
    uint8_t *kv;      /* the metadata section, serialised as it is put */
    size_t kv_len, kv_cap;
    uint64_t n_kv;
    tensor_info *tensors;
    size_t n_tensors, cap_tensors, next; /* next: the tensor whose data comes next */
    uint64_t data_size;
};

static void fail(tr_gguf_writer *w, tr_status s)
{
    if (w->status == TR_OK)
        w->status = s;
}

static void put_bytes(tr_gguf_writer *w, const void *p, size_t n)
{
    if (w->status != TR_OK)
        return;
    if (w->kv_len + n > w->kv_cap) {
        size_t cap = w->kv_cap ? w->kv_cap : 4096;
        while (cap < w->kv_len + n)
            cap *= 2;
        uint8_t *grown = realloc(w->kv, cap);
        if (!grown) {
            fail(w, tr_fail(TR_ERR_NOMEM, "%s: out of memory for the metadata", w->path));
            return;
        }
        w->kv = grown;
        w->kv_cap = cap;
    }
    memcpy(w->kv + w->kv_len, p, n);
    w->kv_len += n;
}

static void put_u32_raw(tr_gguf_writer *w, uint32_t v) { put_bytes(w, &v, 4); }
static void put_u64_raw(tr_gguf_writer *w, uint64_t v) { put_bytes(w, &v, 8); }
static void put_string_raw(tr_gguf_writer *w, const char *s, size_t n)
{
    put_u64_raw(w, n);
    put_bytes(w, s, n);
}

static void put_key(tr_gguf_writer *w, const char *key, tr_gguf_vtype type)
{
    put_string_raw(w, key, strlen(key));
    put_u32_raw(w, type);
    w->n_kv++;
}

tr_status tr_gguf_writer_open(const char *path, tr_gguf_writer **out)
{
    *out = NULL;
    tr_gguf_writer *w = calloc(1, sizeof *w);
    if (!w)
        return tr_fail(TR_ERR_NOMEM, "%s: out of memory", path);
    snprintf(w->path, sizeof w->path, "%s", path);
    tr_status s = tr_out_open(&w->out, path, "wb");
    if (s != TR_OK) {
        free(w);
        return s;
    }
    w->f = w->out.f;
    *out = w;
    return TR_OK;
}

void tr_gguf_put_str(tr_gguf_writer *w, const char *key, const char *value)
{
    put_key(w, key, TR_GGUF_STRING);
    put_string_raw(w, value, strlen(value));
}

void tr_gguf_put_u32(tr_gguf_writer *w, const char *key, uint32_t value)
{
    put_key(w, key, TR_GGUF_UINT32);
    put_u32_raw(w, value);
}

void tr_gguf_put_f32(tr_gguf_writer *w, const char *key, float value)
{
    put_key(w, key, TR_GGUF_FLOAT32);
    put_bytes(w, &value, 4);
}

void tr_gguf_put_bool(tr_gguf_writer *w, const char *key, int value)
{
    uint8_t b = value != 0;
    put_key(w, key, TR_GGUF_BOOL);
    put_bytes(w, &b, 1);
}

static void put_array_head(tr_gguf_writer *w, const char *key, tr_gguf_vtype type, size_t n)
{
    put_key(w, key, TR_GGUF_ARRAY);
    put_u32_raw(w, type);
    put_u64_raw(w, n);
}

void tr_gguf_put_str_array(tr_gguf_writer *w, const char *key, const char *const *values, size_t n)
{
    put_array_head(w, key, TR_GGUF_STRING, n);
    for (size_t i = 0; i < n; i++)
        put_string_raw(w, values[i], strlen(values[i]));
}

void tr_gguf_put_f32_array(tr_gguf_writer *w, const char *key, const float *values, size_t n)
{
    put_array_head(w, key, TR_GGUF_FLOAT32, n);
    put_bytes(w, values, n * sizeof *values);
}

void tr_gguf_put_i32_array(tr_gguf_writer *w, const char *key, const int32_t *values, size_t n)
{
    put_array_head(w, key, TR_GGUF_INT32, n);
    put_bytes(w, values, n * sizeof *values);
}

void tr_gguf_add_tensor(tr_gguf_writer *w, const char *name, uint32_t ggml_type, int ndim, const int64_t *ne,
                        size_t nbytes)
{
    if (w->status != TR_OK)
        return;
    if (w->n_tensors == w->cap_tensors) {
        size_t cap = w->cap_tensors ? 2 * w->cap_tensors : 64;
        tensor_info *grown = realloc(w->tensors, cap * sizeof *grown);
        if (!grown) {
            fail(w, tr_fail(TR_ERR_NOMEM, "%s: out of memory", w->path));
            return;
        }
        w->tensors = grown;
        w->cap_tensors = cap;
    }
    tensor_info *t = &w->tensors[w->n_tensors];
    memset(t, 0, sizeof *t);
    if (!(t->name = malloc(strlen(name) + 1))) {
        fail(w, tr_fail(TR_ERR_NOMEM, "%s: out of memory", w->path));
        return;
    }
    strcpy(t->name, name);
    t->type = ggml_type;
    t->ndim = ndim;
    for (int d = 0; d < 4; d++)
        t->ne[d] = d < ndim ? ne[d] : 1;
    t->nbytes = nbytes;
    t->offset = w->data_size;
    w->data_size += (nbytes + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT;
    w->n_tensors++;
}

static void write_out(tr_gguf_writer *w, const void *p, size_t n)
{
    if (w->status == TR_OK && n && fwrite(p, 1, n, w->f) != n)
        fail(w, tr_fail(TR_ERR_IO, "%s: writing failed: %s (nothing was left there)", w->path, strerror(errno)));
}

static void write_padding(tr_gguf_writer *w, uint64_t written)
{
    static const uint8_t zeros[ALIGNMENT];
    write_out(w, zeros, (size_t)((ALIGNMENT - written % ALIGNMENT) % ALIGNMENT));
}

tr_status tr_gguf_write_header(tr_gguf_writer *w)
{
    /* the tensor infos go after the metadata in the same buffer, then out in one write */
    for (size_t i = 0; i < w->n_tensors; i++) {
        const tensor_info *t = &w->tensors[i];
        put_string_raw(w, t->name, strlen(t->name));
        put_u32_raw(w, (uint32_t)t->ndim);
        for (int d = 0; d < t->ndim; d++)
            put_u64_raw(w, (uint64_t)t->ne[d]);
        put_u32_raw(w, t->type);
        put_u64_raw(w, t->offset);
    }
    const uint32_t magic_version[2] = {0x46554747u /* "GGUF" */, 3};
    const uint64_t counts[2] = {w->n_tensors, w->n_kv};
    write_out(w, magic_version, sizeof magic_version);
    write_out(w, counts, sizeof counts);
    write_out(w, w->kv, w->kv_len);
    write_padding(w, sizeof magic_version + sizeof counts + w->kv_len);
    return w->status;
}

tr_status tr_gguf_write_data(tr_gguf_writer *w, const void *data, size_t nbytes)
{
    if (w->status == TR_OK && (w->next >= w->n_tensors || w->tensors[w->next].nbytes != nbytes))
        fail(w, tr_fail(TR_ERR_INVALID_ARG, "%s: tensor data out of order or of the wrong size", w->path));
    write_out(w, data, nbytes);
    write_padding(w, nbytes);
    w->next++;
    return w->status;
}

tr_status tr_gguf_writer_close(tr_gguf_writer *w)
{
    if (!w)
        return TR_OK;
    if (w->status == TR_OK && w->next != w->n_tensors)
        fail(w, tr_fail(TR_ERR_INVALID_ARG, "%s: %zu of %zu tensors written", w->path, w->next, w->n_tensors));
    if (w->status == TR_OK)
        fail(w, tr_out_commit(&w->out)); /* renamed onto path only when whole */
    else
        tr_out_abort(&w->out); /* never leave half a file that looks like a model */
    tr_status s = w->status;
    for (size_t i = 0; i < w->n_tensors; i++)
        free(w->tensors[i].name);
    free(w->tensors);
    free(w->kv);
    free(w);
    return s;
}
