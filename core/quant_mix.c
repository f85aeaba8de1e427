/* quant_mix.c: which type each tensor of a quantized file gets (tr_file_type_of, quant.h). The rules
 * are llama-quantize's for the file types transit writes, so that a transit Q4_K_M file has the
 * tensor types of llama.cpp's Q4_K_M of the same model (docs/quantization.md). */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "error.h"
#include "quant.h"

static const tr_file_type file_types[] = {
    {"f32", TR_F32, 0, 0},    {"f16", TR_F16, 0, 1},    {"bf16", TR_BF16, 0, 32}, {"q8_0", TR_Q8_0, 0, 7},
    {"q4_0", TR_Q4_0, 0, 2},  {"q4_1", TR_Q4_1, 0, 3},  {"q5_0", TR_Q5_0, 0, 8},  {"q5_1", TR_Q5_1, 0, 9},
    {"q6_k", TR_Q6_K, 0, 18}, {"q4_k_m", TR_Q4_K, 1, 15}, {"q5_k_m", TR_Q5_K, 1, 17},
};

tr_status tr_file_type_parse(const char *name, tr_file_type *out)
{
    for (size_t i = 0; name && i < sizeof file_types / sizeof *file_types; i++)
        if (!strcasecmp(name, file_types[i].name)) {
            *out = file_types[i];
            return TR_OK;
        }
    return tr_fail(TR_ERR_INVALID_ARG,
                   "type '%.32s' is not one of f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k_m, q5_k_m, q6_k",
                   name ? name : "");
}

uint32_t tr_file_type_uniform(tr_dtype t)
{
    for (size_t i = 0; i < sizeof file_types / sizeof *file_types; i++)
        if (file_types[i].base == t && !file_types[i].mix)
            return file_types[i].ftype;
    return 0;
}

/* llama.cpp's choice of the layers whose attn_v and ffn_down get more bits in the _M mixes. */
static int more_bits(int layer, int n_layers)
{
    return layer < n_layers / 8 || layer >= 7 * n_layers / 8 || (layer - n_layers / 8) % 3 == 2;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

tr_dtype tr_file_type_of(const tr_file_type *ft, const char *name, int64_t ne0, int n_layers, int tied)
{
    tr_dtype t = ft->base;
    if (!tr_dtype_is_quant(t))
        return t;
    int layer = -1;
    sscanf(name, "blk.%d.", &layer);
    if (!strcmp(name, "output.weight") || (tied && !strcmp(name, "token_embd.weight"))) {
        /* the output head decides every token: never below Q6_K */
        if (ne0 % TR_QK_K != 0)
            return TR_Q8_0;
        return t == TR_Q8_0 ? TR_Q8_0 : TR_Q6_K;
    }
    if (ft->mix && layer >= 0 && (ends_with(name, ".attn_v.weight") || ends_with(name, ".ffn_down.weight")) &&
        more_bits(layer, n_layers))
        t = TR_Q6_K;
    if (ne0 % tr_dtype_block(t) != 0) /* rows that are not whole blocks: a 32-weight type */
        t = t == TR_Q4_K ? TR_Q5_0 : t == TR_Q5_K ? TR_Q5_1 : t == TR_Q6_K ? TR_Q8_0 : t;
    if (ne0 % tr_dtype_block(t) != 0)
        t = TR_F16;
    return t;
}
