/* fuzz_spm.c: libFuzzer target for the SentencePiece tokenizer.model reader (tr_tokenizer_parse_spm,
 * tr_spm_parse_vocab + tr_tokenizer_from_vocab); a model that loads is then encoded and decoded with
 * (tokenizer_exercise.h). The input is a ModelProto. */
#include "tokenizer_exercise.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tr_tokenizer *t = NULL;
    if (tr_tokenizer_parse_spm(data, size, "fuzz.model", &t) == TR_OK) {
        exercise(t);
        tr_tokenizer_free(t);
    }
    tr_vocab_spec spec;
    if (tr_spm_parse_vocab(data, size, "fuzz.model", &spec, NULL) == TR_OK) {
        if (tr_tokenizer_from_vocab(&spec, &t) == TR_OK) {
            exercise(t);
            tr_tokenizer_free(t);
        }
        tr_vocab_spec_free(&spec);
    }
    return 0;
}
