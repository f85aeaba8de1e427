/* fuzz_tokenizer_json.c: libFuzzer target for the tokenizer.json reader (tr_tokenizer_parse_hf_json);
 * a tokenizer that loads is then encoded and decoded with (tokenizer_exercise.h). The input is JSON
 * text, not NUL-terminated. */
#include "tokenizer_exercise.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tr_tokenizer *t = NULL;
    if (tr_tokenizer_parse_hf_json((const char *)data, size, "fuzz.json", &t) == TR_OK) {
        exercise(t);
        tr_tokenizer_free(t);
    }
    return 0;
}
