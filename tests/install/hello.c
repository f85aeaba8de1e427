/* hello.c: a program of someone else's, built against an installed transit through its one header
 * and pkg-config (or find_package(transit)): loads the model named on the command line, prefills a
 * prompt and prints its greedy continuation, as `transit run --temp 0` prints it. tests/test_install.sh builds and runs it. */
#include <stdio.h>
#include <string.h>
#include <transit.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: hello MODEL\n");
        return 2;
    }
    tr_model *m = NULL;
    tr_context *c = NULL;
    tr_sampler *s = NULL;
    if (tr_model_load(argv[1], NULL, &m) != TR_OK || tr_context_create(m, NULL, &c) != TR_OK) {
        fprintf(stderr, "hello: %s\n", tr_last_error());
        tr_model_free(m);
        return 1;
    }
    const char *prompt = "First Citizen:";
    int32_t ids[64];
    int n = 0;
    tr_sampler_params sp = tr_sampler_default_params();
    sp.temp = 0;
    tr_status st = tr_tokenize(m, prompt, strlen(prompt), 1, ids, 64, &n);
    if (st == TR_OK)
        st = tr_sampler_create(&sp, tr_model_n_vocab(m), &s);
    if (st == TR_OK)
        st = tr_eval(c, ids, n, 0);
    int32_t prev = ids[n - 1];
    for (int i = 0; st == TR_OK && i < 16; i++) {
        int32_t tok = tr_sample(s, tr_get_logits(c, -1));
        char piece[64];
        int len = tr_token_to_piece(m, prev, tok, piece, sizeof piece);
        if (len > 0)
            fwrite(piece, 1, (size_t)len, stdout);
        prev = tok;
        st = tr_eval(c, &tok, 1, 0);
    }
    printf("\n");
    if (st != TR_OK)
        fprintf(stderr, "hello: %s\n", tr_last_error());
    tr_sampler_free(s);
    tr_context_free(c);
    tr_model_free(m);
    return st == TR_OK ? 0 : 1;
}
