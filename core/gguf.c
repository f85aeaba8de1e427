/* gguf.c: the GGUF container parser (see gguf.h). It validates structure only; what the metadata
 * means for a model is model_file.c's business.
 *
 * Layout (little-endian): "GGUF" u32 version, u64 n_tensors, u64 n_kv; n_kv entries of
 * (string key, u32 type, value); n_tensors infos of (string name, u32 n_dims, u64 dims[n_dims],
 * u32 ggml type, u64 offset); padding to general.alignment; the data section. A string is a u64
 * length and that many bytes. */
#include "gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "mapped_file.h"
#include "quant.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the GGUF reader assumes a little-endian host"
#endif

enum {
    MIN_KV_BYTES = 8 + 1 + 4 + 1,                  /* key length, 1-byte key, type, 1-byte value */
    MIN_TENSOR_INFO_BYTES = 8 + 1 + 4 + 8 + 4 + 8, /* name length, name, n_dims, one dim, type, offset */
    MAX_TENSOR_NAME = 255,
    MAX_KEY_LEN = 65535,
};
#define MAX_ALIGNMENT ((uint64_t)1 << 30)

/* A read position in the buffer plus a description of the item being read, for error messages. */
typedef struct cursor {
    const uint8_t *data;
    size_t len, pos;
    const char *name;
    char what[192];
} cursor;

static tr_status need(cursor *c, uint64_t n, const char *part)
{
    if (n <= c->len - c->pos)
        return TR_OK;
    return tr_fail(TR_ERR_FORMAT, "%s: %s: %s of %llu bytes at offset %zu runs past the end of the file (%zu bytes)",
                   c->name, c->what, part, (unsigned long long)n, c->pos, c->len);
}

static tr_status read_bytes(cursor *c, void *dst, size_t n, const char *part)
{
    TR_TRY(need(c, n, part));
    memcpy(dst, c->data + c->pos, n);
    c->pos += n;
    return TR_OK;
}

static tr_status read_u32(cursor *c, uint32_t *v, const char *part) { return read_bytes(c, v, 4, part); }
static tr_status read_u64(cursor *c, uint64_t *v, const char *part) { return read_bytes(c, v, 8, part); }

static tr_status read_string(cursor *c, const uint8_t **s, uint64_t *n, const char *part)
{
    TR_TRY(read_u64(c, n, part));
    TR_TRY(need(c, *n, part));
    *s = c->data + c->pos;
    c->pos += (size_t)*n;
    return TR_OK;
}

/* A NUL-terminated copy of a key or tensor name: 1..max_len bytes, no NUL inside. */
static tr_status copy_name(cursor *c, const uint8_t *s, uint64_t n, uint64_t max_len, const char *part,
                           char **out)
{
    char q[80];
    if (n == 0)
        return tr_fail(TR_ERR_FORMAT, "%s: %s: %s is empty", c->name, c->what, part);
    if (n > max_len)
        return tr_fail(TR_ERR_FORMAT, "%s: %s: %s of %llu bytes is longer than the %llu allowed", c->name, c->what,
                       part, (unsigned long long)n, (unsigned long long)max_len);
    if (memchr(s, 0, (size_t)n))
        return tr_fail(TR_ERR_FORMAT, "%s: %s: %s '%s' contains a NUL byte", c->name, c->what, part,
                       tr_quote(s, (size_t)n, q, sizeof q));
    char *copy = malloc((size_t)n + 1);
    if (!copy)
        return tr_fail(TR_ERR_NOMEM, "%s: out of memory", c->name);
    memcpy(copy, s, (size_t)n);
    copy[n] = '\0';
    *out = copy;
    return TR_OK;
}

/* ---- type tables ---------------------------------------------------------------------------- */

static const size_t scalar_size[TR_GGUF_VTYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *tr_gguf_vtype_name(uint32_t vtype)
{
    static const char *names[TR_GGUF_VTYPE_COUNT] = {"uint8", "int8",   "uint16", "int16", "uint32",
                                                     "int32", "float32", "bool",  "string", "array",
                                                     "uint64", "int64", "float64"};
    return vtype < TR_GGUF_VTYPE_COUNT ? names[vtype] : "?";
}

/* Every ggml type id that has existed (removed ones included, so an old file gets a clear
 * "unsupported" rather than "damaged"). */
static const char *const ggml_type_names[] = {
    "F32",     "F16",     "Q4_0",   "Q4_1",    "Q4_2",     "Q4_3",     "Q5_0",     "Q5_1",
    "Q8_0",    "Q8_1",    "Q2_K",   "Q3_K",    "Q4_K",     "Q5_K",     "Q6_K",     "Q8_K",
    "IQ2_XXS", "IQ2_XS",  "IQ3_XXS", "IQ1_S",  "IQ4_NL",   "IQ3_S",    "IQ2_S",    "IQ4_XS",
    "I8",      "I16",     "I32",    "I64",     "F64",      "IQ1_M",    "BF16",     "Q4_0_4_4",
    "Q4_0_4_8", "Q4_0_8_8", "TQ1_0", "TQ2_0",  "IQ4_NL_4_4", "IQ4_NL_4_8", "IQ4_NL_8_8", "MXFP4",
};
#define N_GGML_TYPES (sizeof ggml_type_names / sizeof ggml_type_names[0])

const char *tr_ggml_type_name(uint32_t type) { return type < N_GGML_TYPES ? ggml_type_names[type] : NULL; }

/* I8, I16, I32, I64, F64: element types that are not quantized, only not supported. */
static int ggml_type_is_plain(uint32_t type) { return type >= 24 && type <= 28; }

/* ---- metadata ------------------------------------------------------------------------------- */

static tr_status read_scalar(cursor *c, tr_gguf_kv *kv)
{
    uint8_t b[8] = {0};
    size_t n = scalar_size[kv->type];
    TR_TRY(read_bytes(c, b, n, "value"));
    switch (kv->type) {
    case TR_GGUF_UINT8: kv->num.u = b[0]; break;
    case TR_GGUF_INT8: kv->num.i = (int8_t)b[0]; break;
    case TR_GGUF_UINT16: { uint16_t v; memcpy(&v, b, 2); kv->num.u = v; break; }
    case TR_GGUF_INT16: { int16_t v; memcpy(&v, b, 2); kv->num.i = v; break; }
    case TR_GGUF_UINT32: { uint32_t v; memcpy(&v, b, 4); kv->num.u = v; break; }
    case TR_GGUF_INT32: { int32_t v; memcpy(&v, b, 4); kv->num.i = v; break; }
    case TR_GGUF_FLOAT32: { float v; memcpy(&v, b, 4); kv->num.f = v; break; }
    case TR_GGUF_UINT64: memcpy(&kv->num.u, b, 8); break;
    case TR_GGUF_INT64: memcpy(&kv->num.i, b, 8); break;
    case TR_GGUF_FLOAT64: memcpy(&kv->num.f, b, 8); break;
    case TR_GGUF_BOOL:
        if (b[0] > 1)
            return tr_fail(TR_ERR_FORMAT, "%s: %s: bool value is %u, expected 0 or 1", c->name, c->what, b[0]);
        kv->num.u = b[0];
        break;
    default: break;
    }
    return TR_OK;
}

static tr_status read_array(cursor *c, tr_gguf_kv *kv)
{
    uint32_t et;
    uint64_t n;
    TR_TRY(read_u32(c, &et, "array element type"));
    if (et == TR_GGUF_ARRAY)
        return tr_fail(TR_ERR_UNSUPPORTED, "%s: %s: nested arrays are not supported", c->name, c->what);
    if (et >= TR_GGUF_VTYPE_COUNT)
        return tr_fail(TR_ERR_FORMAT, "%s: %s: unknown array element type %u", c->name, c->what, et);
    TR_TRY(read_u64(c, &n, "array length"));
    size_t left = c->len - c->pos;
    size_t start = c->pos;
    size_t min_elem = et == TR_GGUF_STRING ? 8 : scalar_size[et];
    if (n > left / min_elem)
        return tr_fail(TR_ERR_FORMAT,
                       "%s: %s: array of %llu %s elements cannot fit in the %zu bytes left after offset %zu",
                       c->name, c->what, (unsigned long long)n, tr_gguf_vtype_name(et), left, c->pos);
    if (et == TR_GGUF_STRING) {
        char part[64];
        for (uint64_t k = 0; k < n; k++) {
            const uint8_t *s;
            uint64_t sl;
            snprintf(part, sizeof part, "string %llu", (unsigned long long)k);
            TR_TRY(read_string(c, &s, &sl, part));
        }
    } else if (et == TR_GGUF_BOOL) {
        for (uint64_t k = 0; k < n; k++)
            if (c->data[c->pos + k] > 1)
                return tr_fail(TR_ERR_FORMAT, "%s: %s: bool element %llu is %u, expected 0 or 1", c->name, c->what,
                               (unsigned long long)k, c->data[c->pos + k]);
        c->pos += (size_t)n;
    } else {
        c->pos += (size_t)n * min_elem;
    }
    kv->arr_type = (tr_gguf_vtype)et;
    kv->arr_n = n;
    kv->arr_data = c->data + start;
    kv->arr_bytes = c->pos - start;
    return TR_OK;
}

static tr_status read_kv(cursor *c, uint64_t index, tr_gguf_kv *kv)
{
    const uint8_t *key;
    uint64_t key_len;
    uint32_t type;
    char q[80];
    snprintf(c->what, sizeof c->what, "metadata entry %llu", (unsigned long long)index);
    TR_TRY(read_string(c, &key, &key_len, "key"));
    TR_TRY(copy_name(c, key, key_len, MAX_KEY_LEN, "key", &kv->key));
    snprintf(c->what, sizeof c->what, "metadata entry %llu ('%s')", (unsigned long long)index,
             tr_quote(key, (size_t)key_len, q, sizeof q));
    TR_TRY(read_u32(c, &type, "value type"));
    if (type >= TR_GGUF_VTYPE_COUNT)
        return tr_fail(TR_ERR_FORMAT, "%s: %s: unknown value type %u", c->name, c->what, type);
    kv->type = (tr_gguf_vtype)type;
    if (type == TR_GGUF_STRING)
        return read_string(c, &kv->str, &kv->str_len, "string value");
    if (type == TR_GGUF_ARRAY)
        return read_array(c, kv);
    return read_scalar(c, kv);
}

/* ---- tensor infos --------------------------------------------------------------------------- */

static tr_status read_tensor_info(cursor *c, uint64_t index, uint64_t alignment, tr_gguf_tensor *t)
{
    const uint8_t *name;
    uint64_t name_len;
    uint32_t n_dims, type;
    snprintf(c->what, sizeof c->what, "tensor info %llu", (unsigned long long)index);
    TR_TRY(read_string(c, &name, &name_len, "name"));
    TR_TRY(copy_name(c, name, name_len, MAX_TENSOR_NAME, "name", &t->name));
    char q[80];
    snprintf(c->what, sizeof c->what, "tensor '%s'", tr_quote(t->name, strlen(t->name), q, sizeof q));
    TR_TRY(read_u32(c, &n_dims, "n_dims"));
    if (n_dims < 1 || n_dims > 4)
        return tr_fail(TR_ERR_FORMAT, "%s: %s has %u dimensions, expected 1 to 4", c->name, c->what, n_dims);
    t->n_dims = (int)n_dims;
    uint64_t n_el = 1;
    for (int d = 0; d < 4; d++)
        t->ne[d] = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        uint64_t v;
        TR_TRY(read_u64(c, &v, "dimension"));
        if (v < 1 || v > (uint64_t)INT64_MAX)
            return tr_fail(TR_ERR_FORMAT, "%s: %s: dimension %u is %llu, expected 1 to 2^63-1", c->name, c->what, d,
                           (unsigned long long)v);
        if (n_el > (uint64_t)INT64_MAX / v)
            return tr_fail(TR_ERR_FORMAT, "%s: %s: element count overflows (dimension %u is %llu)", c->name,
                           c->what, d, (unsigned long long)v);
        n_el *= v;
        t->ne[d] = (int64_t)v;
    }
    TR_TRY(read_u32(c, &type, "type"));
    const char *tname = tr_ggml_type_name(type);
    if (!tname)
        return tr_fail(TR_ERR_FORMAT, "%s: %s has unknown type id %u", c->name, c->what, type);
    int dt = tr_dtype_from_ggml(type);
    if (dt < 0)
        return tr_fail(TR_ERR_UNSUPPORTED,
                       "%s: %s has type %s; transit reads F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K and "
                       "Q6_K%s",
                       c->name, c->what, tname, ggml_type_is_plain(type) ? "" : " (other quantized types not yet)");
    t->dtype = (tr_dtype)dt;
    if (t->ne[0] % tr_dtype_block(t->dtype) != 0)
        return tr_fail(TR_ERR_FORMAT, "%s: %s: its rows of %lld are not a multiple of %s's block of %lld", c->name,
                       c->what, (long long)t->ne[0], tname, (long long)tr_dtype_block(t->dtype));
    TR_TRY(read_u64(c, &t->offset, "offset"));
    if (t->offset % alignment != 0)
        return tr_fail(TR_ERR_FORMAT, "%s: %s: data offset %llu is not a multiple of the alignment %llu", c->name,
                       c->what, (unsigned long long)t->offset, (unsigned long long)alignment);
    /* The byte count is checked against the data section once its start is known. Until then
     * nbytes holds the element count. */
    t->nbytes = (size_t)n_el;
    return TR_OK;
}

/* ---- whole-file checks ---------------------------------------------------------------------- */

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorts names and reports the first one that appears twice. */
static tr_status check_unique(const char *file, char **names, size_t n, const char *what)
{
    if (n < 2)
        return TR_OK;
    char **sorted = malloc(n * sizeof *sorted);
    if (!sorted)
        return tr_fail(TR_ERR_NOMEM, "%s: out of memory", file);
    memcpy(sorted, names, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, cmp_str_ptr);
    tr_status s = TR_OK;
    for (size_t i = 1; i < n; i++) {
        if (strcmp(sorted[i - 1], sorted[i]) == 0) {
            char q[80];
            s = tr_fail(TR_ERR_FORMAT, "%s: %s '%s' appears more than once", file, what,
                        tr_quote(sorted[i], strlen(sorted[i]), q, sizeof q));
            break;
        }
    }
    free(sorted);
    return s;
}

static int cmp_tensor_offset(const void *a, const void *b)
{
    const tr_gguf_tensor *x = *(const tr_gguf_tensor *const *)a, *y = *(const tr_gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static tr_status check_no_overlap(const char *file, tr_gguf *g)
{
    if (g->n_tensors < 2)
        return TR_OK;
    tr_gguf_tensor **order = malloc(g->n_tensors * sizeof *order);
    if (!order)
        return tr_fail(TR_ERR_NOMEM, "%s: out of memory", file);
    for (size_t i = 0; i < g->n_tensors; i++)
        order[i] = &g->tensors[i];
    qsort(order, g->n_tensors, sizeof *order, cmp_tensor_offset);
    tr_status s = TR_OK;
    for (size_t i = 1; i < g->n_tensors; i++) {
        const tr_gguf_tensor *a = order[i - 1], *b = order[i];
        if (a->offset + a->nbytes > b->offset) { /* no overflow: both lie inside the file */
            char qa[80], qb[80];
            s = tr_fail(TR_ERR_FORMAT, "%s: tensor '%s' [offset %llu, %zu bytes] overlaps tensor '%s' at offset %llu",
                        file, tr_quote(a->name, strlen(a->name), qa, sizeof qa), (unsigned long long)a->offset,
                        a->nbytes, tr_quote(b->name, strlen(b->name), qb, sizeof qb), (unsigned long long)b->offset);
            break;
        }
    }
    free(order);
    return s;
}

static tr_status read_alignment(const char *file, tr_gguf *g)
{
    g->alignment = 32;
    const tr_gguf_kv *kv = tr_gguf_find_kv(g, "general.alignment");
    if (!kv)
        return TR_OK;
    int64_t a;
    if (!tr_gguf_kv_int(kv, &a))
        return tr_fail(TR_ERR_FORMAT, "%s: general.alignment has type %s, expected an integer", file,
                       tr_gguf_vtype_name(kv->type));
    if (a < 1 || (uint64_t)a > MAX_ALIGNMENT || (a & (a - 1)) != 0)
        return tr_fail(TR_ERR_FORMAT, "%s: general.alignment is %lld, expected a power of two up to 2^30", file,
                       (long long)a);
    g->alignment = (uint64_t)a;
    return TR_OK;
}

static tr_status parse(cursor *c, tr_gguf *g)
{
    const char *file = c->name;
    if (c->len < 4)
        return tr_fail(TR_ERR_FORMAT, "%s: file of %zu bytes is too short to be a GGUF file", file, c->len);
    if (memcmp(c->data, "GGUF", 4) != 0) {
        char q[40];
        return tr_fail(TR_ERR_FORMAT, "%s: not a GGUF file (magic '%s', expected 'GGUF')", file,
                       tr_quote(c->data, 4, q, sizeof q));
    }
    c->pos = 4;
    snprintf(c->what, sizeof c->what, "header");
    TR_TRY(read_u32(c, &g->version, "version"));
    if (g->version == 1)
        return tr_fail(TR_ERR_UNSUPPORTED, "%s: GGUF version 1 is not supported (only versions 2 and 3)", file);
    if (g->version == 0x02000000u || g->version == 0x03000000u)
        return tr_fail(TR_ERR_UNSUPPORTED, "%s: big-endian GGUF files are not supported", file);
    if (g->version != 2 && g->version != 3)
        return tr_fail(TR_ERR_FORMAT, "%s: unknown GGUF version %u (only versions 2 and 3 are supported)", file,
                       g->version);
    uint64_t n_tensors, n_kv;
    TR_TRY(read_u64(c, &n_tensors, "tensor count"));
    TR_TRY(read_u64(c, &n_kv, "metadata count"));
    size_t left = c->len - c->pos;
    if (n_kv > left / MIN_KV_BYTES)
        return tr_fail(TR_ERR_FORMAT, "%s: metadata count %llu cannot fit in the %zu bytes after the header", file,
                       (unsigned long long)n_kv, left);
    if (n_tensors > left / MIN_TENSOR_INFO_BYTES || n_kv * MIN_KV_BYTES + n_tensors * MIN_TENSOR_INFO_BYTES > left)
        return tr_fail(TR_ERR_FORMAT, "%s: tensor count %llu cannot fit in the %zu bytes after the header", file,
                       (unsigned long long)n_tensors, left);

    g->kvs = calloc(n_kv ? (size_t)n_kv : 1, sizeof *g->kvs);
    g->tensors = calloc(n_tensors ? (size_t)n_tensors : 1, sizeof *g->tensors);
    if (!g->kvs || !g->tensors)
        return tr_fail(TR_ERR_NOMEM, "%s: out of memory", file);
    for (uint64_t i = 0; i < n_kv; i++) {
        g->n_kv = (size_t)i + 1; /* so tr_gguf_free sees the partial entry's key */
        TR_TRY(read_kv(c, i, &g->kvs[i]));
    }
    char **names = malloc((n_kv > n_tensors ? (size_t)n_kv : (size_t)n_tensors) * sizeof *names + 1);
    if (!names)
        return tr_fail(TR_ERR_NOMEM, "%s: out of memory", file);
    for (size_t i = 0; i < g->n_kv; i++)
        names[i] = g->kvs[i].key;
    tr_status s = check_unique(file, names, g->n_kv, "metadata key");
    if (s == TR_OK)
        s = read_alignment(file, g);
    for (uint64_t i = 0; s == TR_OK && i < n_tensors; i++) {
        g->n_tensors = (size_t)i + 1;
        s = read_tensor_info(c, i, g->alignment, &g->tensors[i]);
    }
    if (s == TR_OK) {
        for (size_t i = 0; i < g->n_tensors; i++)
            names[i] = g->tensors[i].name;
        s = check_unique(file, names, g->n_tensors, "tensor name");
    }
    free(names);
    TR_TRY(s);

    /* The data section starts at the next multiple of the alignment (pos <= len < 2^63 and the
     * alignment is at most 2^30, so this cannot overflow). A file with no tensor data may end early. */
    g->data_offset = (c->pos + (size_t)g->alignment - 1) / (size_t)g->alignment * (size_t)g->alignment;
    size_t data_size = g->data_offset <= c->len ? c->len - g->data_offset : 0;
    for (size_t i = 0; i < g->n_tensors; i++) {
        tr_gguf_tensor *t = &g->tensors[i];
        size_t esize = tr_dtype_size(t->dtype); /* bytes of a unit: an element or a block */
        uint64_t n_el = t->nbytes / (uint64_t)tr_dtype_block(t->dtype); /* units (rows are whole blocks) */
        if (n_el > data_size / esize || t->offset > data_size || n_el * esize > data_size - t->offset) {
            char q[80];
            return tr_fail(TR_ERR_FORMAT,
                           "%s: tensor '%s' data [offset %llu in the data section at %zu, %llu units of %zu bytes] "
                           "runs past the end of the file (%zu bytes)",
                           file, tr_quote(t->name, strlen(t->name), q, sizeof q), (unsigned long long)t->offset,
                           g->data_offset, (unsigned long long)n_el, esize, c->len);
        }
        t->nbytes = (size_t)(n_el * esize);
        t->data = c->data + g->data_offset + t->offset;
    }
    return check_no_overlap(file, g);
}

tr_status tr_gguf_parse(const uint8_t *data, size_t len, const char *name_for_errors, tr_gguf *out)
{
    memset(out, 0, sizeof *out);
    cursor c = {.data = data, .len = data ? len : 0, .pos = 0, .name = name_for_errors};
    tr_status s = parse(&c, out);
    if (s != TR_OK)
        tr_gguf_free(out);
    return s;
}

void tr_gguf_free(tr_gguf *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->n_kv; i++)
        free(g->kvs[i].key);
    for (size_t i = 0; i < g->n_tensors; i++)
        free(g->tensors[i].name);
    free(g->kvs);
    free(g->tensors);
    memset(g, 0, sizeof *g);
}

/* ---- accessors ------------------------------------------------------------------------------ */

const tr_gguf_kv *tr_gguf_find_kv(const tr_gguf *g, const char *key)
{
    for (size_t i = 0; i < g->n_kv; i++)
        if (g->kvs[i].key && strcmp(g->kvs[i].key, key) == 0)
            return &g->kvs[i];
    return NULL;
}

const tr_gguf_tensor *tr_gguf_find_tensor(const tr_gguf *g, const char *name)
{
    for (size_t i = 0; i < g->n_tensors; i++)
        if (g->tensors[i].name && strcmp(g->tensors[i].name, name) == 0)
            return &g->tensors[i];
    return NULL;
}

int tr_gguf_kv_int(const tr_gguf_kv *kv, int64_t *out)
{
    switch (kv->type) {
    case TR_GGUF_UINT8: case TR_GGUF_UINT16: case TR_GGUF_UINT32: case TR_GGUF_UINT64:
        if (kv->num.u > (uint64_t)INT64_MAX)
            return 0;
        *out = (int64_t)kv->num.u;
        return 1;
    case TR_GGUF_INT8: case TR_GGUF_INT16: case TR_GGUF_INT32: case TR_GGUF_INT64:
        *out = kv->num.i;
        return 1;
    default:
        return 0;
    }
}

int tr_gguf_kv_number(const tr_gguf_kv *kv, double *out)
{
    int64_t i;
    if (kv->type == TR_GGUF_FLOAT32 || kv->type == TR_GGUF_FLOAT64) {
        *out = kv->num.f;
        return 1;
    }
    if (kv->type == TR_GGUF_UINT64) { /* may exceed int64 */
        *out = (double)kv->num.u;
        return 1;
    }
    if (tr_gguf_kv_int(kv, &i)) {
        *out = (double)i;
        return 1;
    }
    return 0;
}

int64_t tr_gguf_arr_int(const tr_gguf_kv *kv, uint64_t i)
{
    const uint8_t *p = kv->arr_data + i * scalar_size[kv->arr_type];
    switch (kv->arr_type) {
    case TR_GGUF_UINT8: case TR_GGUF_BOOL: return p[0];
    case TR_GGUF_INT8: return (int8_t)p[0];
    case TR_GGUF_UINT16: { uint16_t v; memcpy(&v, p, 2); return v; }
    case TR_GGUF_INT16: { int16_t v; memcpy(&v, p, 2); return v; }
    case TR_GGUF_UINT32: { uint32_t v; memcpy(&v, p, 4); return v; }
    case TR_GGUF_INT32: { int32_t v; memcpy(&v, p, 4); return v; }
    case TR_GGUF_UINT64: { uint64_t v; memcpy(&v, p, 8); return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v; }
    case TR_GGUF_INT64: { int64_t v; memcpy(&v, p, 8); return v; }
    default: return 0; /* floats and strings are not integers */
    }
}

double tr_gguf_arr_number(const tr_gguf_kv *kv, uint64_t i)
{
    const uint8_t *p = kv->arr_data + i * scalar_size[kv->arr_type];
    if (kv->arr_type == TR_GGUF_FLOAT32) {
        float v;
        memcpy(&v, p, 4);
        return v;
    }
    if (kv->arr_type == TR_GGUF_FLOAT64) {
        double v;
        memcpy(&v, p, 8);
        return v;
    }
    return (double)tr_gguf_arr_int(kv, i);
}

int tr_gguf_arr_next_string(const tr_gguf_kv *kv, size_t *pos, const uint8_t **s, uint64_t *len)
{
    if (kv->type != TR_GGUF_ARRAY || kv->arr_type != TR_GGUF_STRING || *pos + 8 > kv->arr_bytes)
        return 0;
    memcpy(len, kv->arr_data + *pos, 8);
    *s = kv->arr_data + *pos + 8;
    *pos += 8 + (size_t)*len;
    return 1;
}
