/* fuzz_tiktoken.c: libFuzzer target for the tiktoken tokenizer.model reader (tr_tokenizer_parse_tiktoken);
 * a tokenizer that loads is then encoded and decoded with (tokenizer_exercise.h). An input with a NUL
 * byte is split there: the tiktoken text before it, a tokenizer_config.json after it (the special
 * tokens' names), so both readers are reached. */
#include "tokenizer_exercise.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t model_size = nul ? (size_t)(nul - data) : size;
    const char *config = nul ? (const char *)nul + 1 : NULL;
    size_t config_size = nul ? size - model_size - 1 : 0;
    tr_tokenizer *t = NULL;
    if (tr_tokenizer_parse_tiktoken(data, model_size, config, config_size, "fuzz.model", &t) == TR_OK) {
        exercise(t);
        tr_tokenizer_free(t);
    } else if (strchr(tr_last_error(), '\n') || strncmp(tr_last_error(), "fuzz.model", 10) != 0) {
        abort(); /* the error contract: one line naming the file */
    }
    return 0;
}
