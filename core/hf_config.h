/* hf_config.h: Hugging Face JSON files (config.json, tokenizer_config.json) and the JSON helpers the
 * loaders share (implemented in hf_config.c). Private to the loaders.
 *
 * Everything parses from memory, so fuzzers need no files; `path` only starts error messages. */
#ifndef TR_HF_CONFIG_H
#define TR_HF_CONFIG_H

#include <stddef.h>

#include <cJSON.h>

#include "model_file.h"
#include "transit.h"

/* "string", "number", "object", ... for error messages. */
const char *tr_json_type_name(const cJSON *j);

/* Parses text[0..len) as one JSON value (NUL bytes and trailing non-space data are errors).
 * *out is freed with cJSON_Delete. */
tr_status tr_json_parse(const char *text, size_t len, const char *path, cJSON **out);

/* config.json of a LlamaForCausalLM checkpoint into hp (arch "llama", rope_layout TR_ROPE_HALF,
 * tied_embeddings from tie_word_embeddings). Every key's type and range is checked. */
tr_status tr_hf_config_parse(const char *text, size_t len, const char *path, tr_hparams *hp);

/* Adds the ids of `eos_token_id` (an id or a list of them) in a config.json or generation_config.json
 * to hp's end-of-generation set. */
tr_status tr_hf_eos_ids_parse(const char *text, size_t len, const char *path, tr_hparams *hp);

/* tokenizer_config.json: *add_bos from add_bos_token (default 1) and *chat_template (malloc'd, NULL
 * when absent) from chat_template: a string, or a list of {"name", "template"} of which "default". */
tr_status tr_hf_tokenizer_config_parse(const char *text, size_t len, const char *path, int *add_bos,
                                       char **chat_template);

#endif
