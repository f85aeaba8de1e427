/* fuzz_safetensors.c: libFuzzer target for the safetensors parser on a single-file checkpoint in
 * memory. Accepted tensors' bytes are read in full (ASan checks the bounds); rejected inputs must
 * give a one-line message starting with the file name. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"
#include "transit.h"

static const char *const NAME = "fuzz.safetensors";
static volatile unsigned sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tr_safetensors st;
    if (tr_safetensors_parse(data, size, NAME, &st) == TR_OK) {
        for (size_t i = 0; i < st.n_tensors; i++) {
            const tr_st_tensor *t = &st.tensors[i];
            unsigned acc = 0;
            for (size_t k = 0; k < t->nbytes; k++)
                acc += t->data[k];
            sink += acc;
            if (tr_safetensors_find(&st, t->name) != t || t->ndim < 0 || t->ndim > 4)
                abort();
        }
    } else {
        const char *e = tr_last_error();
        if (strchr(e, '\n') || strncmp(e, NAME, strlen(NAME)) != 0)
            abort();
    }
    tr_safetensors_free(&st);
    return 0;
}
