/* fuzz_chat.c: libFuzzer target for the chat formats (core/chat.c) on the real Llama 3 tokenizer
 * (../shared/models/llama3-tokenizer/tokenizer.json, loaded once).
 *
 * Input: byte 0 picks the format (llama3, llama2, chatml: the last fails cleanly, as this vocabulary
 * has no <|im_start|>) and whether a system message leads; the rest, split at NUL bytes, is the
 * messages' contents, roles alternating user / assistant. Whatever the bytes (invalid UTF-8,
 * whitespace of every kind at the ends, markup such as <|eot_id|> inside), a prompt that formats
 * must: have its ids in the vocabulary, decode to exactly the text tr_chat_render gives (byte-level
 * BPE loses nothing, and the message text stays text), and equal its first turns followed by the
 * rest continued (TR_CHAT_CONTINUE) at every user message after a reply. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "tokenizer.h"

#define REQUIRE(cond) \
    do {              \
        if (!(cond))  \
            abort();  \
    } while (0)

#define MAX_MSGS 12

static tr_tokenizer *llama3(void)
{
    static tr_tokenizer *t;
    if (!t) {
        const char *dir = getenv("TR_TEST_SHARED");
        char path[1024];
        snprintf(path, sizeof path, "%s/models/llama3-tokenizer/tokenizer.json", dir ? dir : TR_SHARED_DIR);
        if (tr_tokenizer_load_hf_json(path, &t) != TR_OK) {
            fprintf(stderr, "fuzz_chat: %s\n", tr_last_error());
            abort();
        }
    }
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1 << 16)
        return 0;
    const tr_tokenizer *t = llama3();
    tr_chat_format f = (tr_chat_format)(TR_CHAT_LLAMA3 + data[0] % 3);
    int system = data[0] & 4;
    char *text = malloc(size); /* the contents, NUL-separated, NUL-terminated */
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    tr_chat_message m[MAX_MSGS];
    int n = 0;
    for (char *s = text; n < MAX_MSGS && s <= text + size - 1; s += strlen(s) + 1) {
        m[n].role = system && n == 0 ? "system" : (n - (system ? 1 : 0)) % 2 == 0 ? "user" : "assistant";
        m[n].content = s;
        n++;
    }
    int n_ids = 0;
    size_t len = 0;
    tr_status s = tr_chat_apply(t, f, m, n, TR_CHAT_GENERATION_PROMPT, NULL, 0, &n_ids, NULL, 0, &len);
    if (s != TR_OK) {
        REQUIRE(f == TR_CHAT_CHATML && s == TR_ERR_UNSUPPORTED && !strchr(tr_last_error(), '\n'));
        free(text);
        return 0;
    }
    int32_t *ids = malloc((size_t)(n_ids + 1) * sizeof *ids);
    char *render = malloc(len + 1), *decoded = malloc(len + 1);
    int n2 = 0;
    size_t len2 = 0;
    REQUIRE(tr_chat_apply(t, f, m, n, TR_CHAT_GENERATION_PROMPT, ids, n_ids, &n2, render, len + 1, &len2) == TR_OK);
    REQUIRE(n2 == n_ids && len2 == len && render[len] == '\0');
    for (int i = 0; i < n_ids; i++)
        REQUIRE(ids[i] >= 0 && ids[i] < tr_tokenizer_n_vocab(t));
    REQUIRE(tr_tokenizer_decode(t, ids, n_ids, decoded, (int)len + 1) == (int)len && !memcmp(decoded, render, len));

    int32_t *part = malloc((size_t)(n_ids + 1) * sizeof *part);
    for (int j = 1; j < n; j++) {
        if (strcmp(m[j].role, "user") || strcmp(m[j - 1].role, "assistant"))
            continue;
        int a = 0, b = 0;
        REQUIRE(tr_chat_apply(t, f, m, j, 0, part, n_ids, &a, NULL, 0, NULL) == TR_OK);
        REQUIRE(tr_chat_apply(t, f, m + j, n - j, TR_CHAT_CONTINUE | TR_CHAT_GENERATION_PROMPT, part + a, n_ids - a,
                              &b, NULL, 0, NULL) == TR_OK);
        REQUIRE(a + b == n_ids && !memcmp(part, ids, (size_t)n_ids * sizeof *ids));
    }
    free(part);
    free(ids);
    free(render);
    free(decoded);
    free(text);
    return 0;
}
