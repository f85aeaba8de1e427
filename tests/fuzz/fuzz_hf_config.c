/* fuzz_hf_config.c: libFuzzer target for the Hugging Face JSON files, from memory: the same input is
 * read as config.json, tokenizer_config.json and model.safetensors.index.json. Accepted configs
 * must satisfy the invariants later stages rely on; rejected ones give a one-line message that
 * starts with the file name. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hf_config.h"
#include "safetensors.h"

static void check_error(const char *name)
{
    const char *e = tr_last_error();
    if (strchr(e, '\n') || strncmp(e, name, strlen(name)) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    tr_hparams hp;
    if (tr_hf_config_parse(text, size, "config.json", &hp) == TR_OK) {
        if (hp.dim < 1 || hp.n_layers < 1 || hp.n_heads < 1 || hp.n_kv_heads < 1 || hp.head_dim < 1 ||
            hp.head_dim % 2 || hp.n_heads % hp.n_kv_heads || hp.n_vocab < 1 || hp.ffn_dim < 1 ||
            !(hp.rms_eps > 0) || !(hp.rope_theta > 0) || hp.bos_id >= hp.n_vocab || hp.eos_id >= hp.n_vocab ||
            (unsigned)hp.act >= TR_ACT_COUNT || (hp.diff_attn && (hp.n_heads % 2 || hp.n_kv_heads % 2)) ||
            strcmp(hp.arch, hp.diff_attn ? "diffllama" : "llama") != 0 ||
            (hp.rope_scaling != TR_ROPE_SCALING_NONE && !(hp.rope_factor > 0)) ||
            (hp.rope_scaling == TR_ROPE_SCALING_LLAMA3 &&
             !(hp.rope_high_freq_factor > hp.rope_low_freq_factor && hp.rope_low_freq_factor > 0 && hp.rope_orig_ctx > 0)) ||
            hp.n_eog > TR_MAX_EOG)
            abort();
    } else {
        check_error("config.json");
    }
    int add_bos;
    char *chat_template = NULL;
    if (tr_hf_tokenizer_config_parse(text, size, "tokenizer_config.json", &add_bos, &chat_template) != TR_OK) {
        check_error("tokenizer_config.json");
    } else {
        if (add_bos != 0 && add_bos != 1)
            abort();
        tr_chat_format fmt;
        if (chat_template && tr_chat_format_detect(chat_template, "tokenizer_config.json", &fmt) != TR_OK)
            check_error("tokenizer_config.json");
        else if (chat_template && (fmt < TR_CHAT_LLAMA3 || fmt > TR_CHAT_CHATML))
            abort();
    }
    free(chat_template);
    tr_st_index idx;
    if (tr_st_index_parse(text, size, "index.json", &idx) == TR_OK) {
        for (size_t i = 0; i < idx.n; i++)
            if (!idx.entries[i].shard[0] || strchr(idx.entries[i].shard, '/') || strstr(idx.entries[i].shard, ".."))
                abort();
    } else {
        check_error("index.json");
    }
    tr_st_index_free(&idx);
    return 0;
}
