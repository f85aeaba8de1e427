/* safetensors.c: the safetensors parser and the sharded-checkpoint index (see safetensors.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strdup under -std=c11 */
#endif
#include "safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "hf_config.h"
#include "mapped_file.h"

#define MAX_JSON_INT 9007199254740992.0 /* 2^53: beyond this a JSON number is not an exact integer */

typedef struct dtype_info {
    const char *name;
    unsigned bits; /* per element */
    int dtype;     /* tr_dtype, or -1 */
} dtype_info;

/* The dtypes of the safetensors format. */
static const dtype_info dtypes[] = {
    {"F32", 32, TR_F32},  {"F16", 16, TR_F16},  {"BF16", 16, TR_BF16}, {"F64", 64, -1},
    {"I64", 64, -1},      {"U64", 64, -1},      {"I32", 32, -1},       {"U32", 32, -1},
    {"I16", 16, -1},      {"U16", 16, -1},      {"I8", 8, -1},         {"U8", 8, -1},
    {"BOOL", 8, -1},      {"F8_E4M3", 8, -1},   {"F8_E5M2", 8, -1},    {"F8_E8M0", 8, -1},
    {"F6_E2M3", 6, -1},   {"F6_E3M2", 6, -1},   {"F4", 4, -1},         {"C64", 64, -1},
};

static const dtype_info *find_dtype(const char *name)
{
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (strcmp(dtypes[i].name, name) == 0)
            return &dtypes[i];
    return NULL;
}

static int json_uint(const cJSON *j, uint64_t *out)
{
    if (!cJSON_IsNumber(j))
        return 0;
    double d = j->valuedouble;
    if (!(d >= 0 && d <= MAX_JSON_INT) || d != floor(d))
        return 0;
    *out = (uint64_t)d;
    return 1;
}

static const char *quote_name(const char *s, char *buf, size_t cap) { return tr_quote(s, strlen(s), buf, cap); }

static void format_shape(const cJSON *shape, char *buf, size_t cap)
{
    size_t o = 0;
    const cJSON *d;
    o += (size_t)snprintf(buf, cap, "[");
    cJSON_ArrayForEach(d, shape)
    {
        if (o >= cap)
            break;
        o += (size_t)snprintf(buf + o, cap - o, "%s%.0f", d == shape->child ? "" : ", ", d->valuedouble);
    }
    if (o < cap)
        snprintf(buf + o, cap - o, "]");
}

/* One entry of the header: name -> {"dtype", "shape", "data_offsets"}. */
static tr_status parse_tensor(const char *file, const cJSON *item, const uint8_t *data, size_t data_size,
                              tr_st_tensor *t)
{
    char q[80];
    const char *name = quote_name(item->string, q, sizeof q);
    if (!cJSON_IsObject(item))
        return tr_fail(TR_ERR_FORMAT, "%s: tensor '%s' must be a JSON object, got %s", file, name,
                       tr_json_type_name(item));
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(dtype))
        return tr_fail(TR_ERR_FORMAT, "%s: tensor '%s': 'dtype' must be a string, got %s", file, name,
                       tr_json_type_name(dtype));
    if (!cJSON_IsArray(shape))
        return tr_fail(TR_ERR_FORMAT, "%s: tensor '%s': 'shape' must be an array, got %s", file, name,
                       tr_json_type_name(shape));
    if (!cJSON_IsArray(offsets))
        return tr_fail(TR_ERR_FORMAT, "%s: tensor '%s': 'data_offsets' must be an array, got %s", file, name,
                       tr_json_type_name(offsets));

    const dtype_info *di = find_dtype(dtype->valuestring);
    if (!di) {
        char qd[40];
        return tr_fail(TR_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype '%s', which is not a known safetensors dtype",
                       file, name, tr_quote(dtype->valuestring, strlen(dtype->valuestring), qd, sizeof qd));
    }
    t->dtype = di->dtype;
    snprintf(t->dtype_name, sizeof t->dtype_name, "%s", di->name);

    int ndim = cJSON_GetArraySize(shape);
    if (ndim > 4)
        return tr_fail(TR_ERR_UNSUPPORTED, "%s: tensor '%s' has %d dimensions; at most 4 are supported", file, name,
                       ndim);
    t->ndim = ndim;
    for (int d = 0; d < 4; d++)
        t->ne[d] = 1;
    uint64_t n_el = 1;
    int d = 0;
    const cJSON *dim;
    cJSON_ArrayForEach(dim, shape)
    {
        uint64_t v;
        if (!json_uint(dim, &v)) {
            if (cJSON_IsNumber(dim))
                return tr_fail(TR_ERR_FORMAT, "%s: tensor '%s': shape entry %d must be a non-negative integer, got %g",
                               file, name, d, dim->valuedouble);
            return tr_fail(TR_ERR_FORMAT, "%s: tensor '%s': shape entry %d must be a non-negative integer, got %s",
                           file, name, d, tr_json_type_name(dim));
        }
        if (v != 0 && n_el > UINT64_MAX / v)
            return tr_fail(TR_ERR_FORMAT, "%s: tensor '%s': element count of its shape overflows", file, name);
        n_el *= v;
        t->ne[ndim - 1 - d] = (int64_t)v; /* row-major outermost-first -> ne[0] innermost */
        d++;
    }

    uint64_t begin, end;
    if (cJSON_GetArraySize(offsets) != 2 || !json_uint(cJSON_GetArrayItem(offsets, 0), &begin) ||
        !json_uint(cJSON_GetArrayItem(offsets, 1), &end))
        return tr_fail(TR_ERR_FORMAT, "%s: tensor '%s': 'data_offsets' must be two non-negative integers", file,
                       name);
    if (begin > end)
        return tr_fail(TR_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] end before they begin", file, name,
                       (unsigned long long)begin, (unsigned long long)end);
    if (end > data_size)
        return tr_fail(TR_ERR_FORMAT,
                       "%s: tensor '%s' data_offsets [%llu, %llu] run past the end of the data "
                       "(%zu bytes after the header)",
                       file, name, (unsigned long long)begin, (unsigned long long)end, data_size);
    uint64_t bytes = end - begin;
    if (bytes > UINT64_MAX / 8 || n_el > UINT64_MAX / di->bits || bytes * 8 != n_el * di->bits) {
        char sh[96];
        format_shape(shape, sh, sizeof sh);
        return tr_fail(TR_ERR_FORMAT,
                       "%s: tensor '%s' data_offsets [%llu, %llu] hold %llu bytes, but shape %s of %s needs %.0f", file,
                       name, (unsigned long long)begin, (unsigned long long)end, (unsigned long long)bytes, sh, di->name,
                       (double)n_el * di->bits / 8);
    }
    t->data = data + begin;
    t->nbytes = (size_t)bytes;
    return TR_OK;
}

static int cmp_tensor_name(const void *a, const void *b)
{
    return strcmp(((const tr_st_tensor *)a)->name, ((const tr_st_tensor *)b)->name);
}

static int cmp_tensor_ptr_data(const void *a, const void *b)
{
    const tr_st_tensor *x = *(const tr_st_tensor *const *)a, *y = *(const tr_st_tensor *const *)b;
    return x->data < y->data ? -1 : x->data > y->data;
}

static tr_status check_no_overlap(const char *file, tr_safetensors *st, const uint8_t *base)
{
    if (st->n_tensors < 2)
        return TR_OK;
    const tr_st_tensor **order = malloc(st->n_tensors * sizeof *order);
    if (!order)
        return tr_fail(TR_ERR_NOMEM, "%s: out of memory", file);
    for (size_t i = 0; i < st->n_tensors; i++)
        order[i] = &st->tensors[i];
    qsort(order, st->n_tensors, sizeof *order, cmp_tensor_ptr_data);
    tr_status s = TR_OK;
    for (size_t i = 1; i < st->n_tensors; i++) {
        const tr_st_tensor *a = order[i - 1], *b = order[i];
        if (a->nbytes && b->nbytes && a->data + a->nbytes > b->data) {
            char qa[80], qb[80];
            s = tr_fail(TR_ERR_FORMAT, "%s: tensor '%s' [%zu, %zu) overlaps tensor '%s' [%zu, %zu)", file,
                        quote_name(a->name, qa, sizeof qa), (size_t)(a->data - base),
                        (size_t)(a->data - base) + a->nbytes, quote_name(b->name, qb, sizeof qb),
                        (size_t)(b->data - base), (size_t)(b->data - base) + b->nbytes);
            break;
        }
    }
    free(order);
    return s;
}

static tr_status parse_header(const char *file, const cJSON *root, const uint8_t *data, size_t data_size,
                              tr_safetensors *st)
{
    if (!cJSON_IsObject(root))
        return tr_fail(TR_ERR_FORMAT, "%s: the JSON header must be an object, got %s", file, tr_json_type_name(root));
    size_t n = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, root) n++;
    st->tensors = calloc(n ? n : 1, sizeof *st->tensors);
    if (!st->tensors)
        return tr_fail(TR_ERR_NOMEM, "%s: out of memory", file);
    cJSON_ArrayForEach(item, root)
    {
        if (strcmp(item->string, "__metadata__") == 0) { /* free-form strings: not ours to judge */
            if (!cJSON_IsObject(item))
                return tr_fail(TR_ERR_FORMAT, "%s: '__metadata__' must be an object, got %s", file,
                               tr_json_type_name(item));
            continue;
        }
        tr_st_tensor *t = &st->tensors[st->n_tensors++];
        t->name = strdup(item->string);
        if (!t->name)
            return tr_fail(TR_ERR_NOMEM, "%s: out of memory", file);
        TR_TRY(parse_tensor(file, item, data, data_size, t));
    }
    qsort(st->tensors, st->n_tensors, sizeof *st->tensors, cmp_tensor_name);
    for (size_t i = 1; i < st->n_tensors; i++)
        if (strcmp(st->tensors[i - 1].name, st->tensors[i].name) == 0) {
            char q[80];
            return tr_fail(TR_ERR_FORMAT, "%s: tensor '%s' appears more than once in the header", file,
                           quote_name(st->tensors[i].name, q, sizeof q));
        }
    return check_no_overlap(file, st, data);
}

tr_status tr_safetensors_parse(const uint8_t *data, size_t len, const char *name_for_errors, tr_safetensors *out)
{
    const char *file = name_for_errors;
    memset(out, 0, sizeof *out);
    if (!data || len < 8)
        return tr_fail(TR_ERR_FORMAT, "%s: file of %zu bytes is too short for a safetensors header", file,
                       data ? len : 0);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | data[i];
    if (hlen > TR_SAFETENSORS_MAX_HEADER)
        return tr_fail(TR_ERR_FORMAT, "%s: header length %llu is larger than the %llu bytes allowed", file,
                       (unsigned long long)hlen, (unsigned long long)TR_SAFETENSORS_MAX_HEADER);
    if (hlen > len - 8)
        return tr_fail(TR_ERR_FORMAT, "%s: header of %llu bytes runs past the end of the file (%zu bytes)", file,
                       (unsigned long long)hlen, len);
    cJSON *root = NULL;
    tr_status s = tr_json_parse((const char *)data + 8, (size_t)hlen, file, &root);
    if (s == TR_OK) {
        out->data_offset = 8 + (size_t)hlen;
        s = parse_header(file, root, data + out->data_offset, len - out->data_offset, out);
    }
    cJSON_Delete(root);
    if (s != TR_OK)
        tr_safetensors_free(out);
    return s;
}

void tr_safetensors_free(tr_safetensors *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->n_tensors; i++)
        free(st->tensors[i].name);
    free(st->tensors);
    memset(st, 0, sizeof *st);
}

const tr_st_tensor *tr_safetensors_find(const tr_safetensors *st, const char *name)
{
    if (!st->n_tensors)
        return NULL;
    tr_st_tensor key = {.name = (char *)name};
    return bsearch(&key, st->tensors, st->n_tensors, sizeof *st->tensors, cmp_tensor_name);
}

/* ---- model.safetensors.index.json ----------------------------------------------------------- */

static int is_plain_file_name(const char *s)
{
    return s[0] != '\0' && !strchr(s, '/') && !strchr(s, '\\') && !strstr(s, "..");
}

static int cmp_entry_tensor(const void *a, const void *b)
{
    return strcmp(((const tr_st_index_entry *)a)->tensor, ((const tr_st_index_entry *)b)->tensor);
}

static tr_status parse_index(const char *file, const cJSON *root, tr_st_index *idx)
{
    if (!cJSON_IsObject(root))
        return tr_fail(TR_ERR_FORMAT, "%s: must be a JSON object, got %s", file, tr_json_type_name(root));
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!map)
        return tr_fail(TR_ERR_FORMAT, "%s: 'weight_map' is missing", file);
    if (!cJSON_IsObject(map))
        return tr_fail(TR_ERR_FORMAT, "%s: 'weight_map' must be an object, got %s", file, tr_json_type_name(map));
    size_t n = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, map) n++;
    if (n == 0)
        return tr_fail(TR_ERR_FORMAT, "%s: 'weight_map' is empty", file);
    idx->entries = calloc(n, sizeof *idx->entries);
    if (!idx->entries)
        return tr_fail(TR_ERR_NOMEM, "%s: out of memory", file);
    cJSON_ArrayForEach(item, map)
    {
        char q[80], qs[80];
        if (!cJSON_IsString(item))
            return tr_fail(TR_ERR_FORMAT, "%s: weight_map['%s'] must be a string, got %s", file,
                           quote_name(item->string, q, sizeof q), tr_json_type_name(item));
        if (!is_plain_file_name(item->valuestring))
            return tr_fail(TR_ERR_FORMAT, "%s: weight_map['%s'] names the shard '%s', which is not a plain file name",
                           file, quote_name(item->string, q, sizeof q), quote_name(item->valuestring, qs, sizeof qs));
        tr_st_index_entry *e = &idx->entries[idx->n++];
        e->tensor = strdup(item->string);
        e->shard = strdup(item->valuestring);
        if (!e->tensor || !e->shard)
            return tr_fail(TR_ERR_NOMEM, "%s: out of memory", file);
    }
    qsort(idx->entries, idx->n, sizeof *idx->entries, cmp_entry_tensor);
    for (size_t i = 1; i < idx->n; i++)
        if (strcmp(idx->entries[i - 1].tensor, idx->entries[i].tensor) == 0) {
            char q[80];
            return tr_fail(TR_ERR_FORMAT, "%s: weight_map lists tensor '%s' more than once", file,
                           quote_name(idx->entries[i].tensor, q, sizeof q));
        }
    return TR_OK;
}

tr_status tr_st_index_parse(const char *text, size_t len, const char *name_for_errors, tr_st_index *out)
{
    memset(out, 0, sizeof *out);
    cJSON *root = NULL;
    tr_status s = tr_json_parse(text, len, name_for_errors, &root);
    if (s == TR_OK)
        s = parse_index(name_for_errors, root, out);
    cJSON_Delete(root);
    if (s != TR_OK)
        tr_st_index_free(out);
    return s;
}

void tr_st_index_free(tr_st_index *idx)
{
    if (!idx)
        return;
    for (size_t i = 0; i < idx->n; i++) {
        free(idx->entries[i].tensor);
        free(idx->entries[i].shard);
    }
    free(idx->entries);
    memset(idx, 0, sizeof *idx);
}
