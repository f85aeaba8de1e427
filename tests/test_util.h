/* test_util.h: a tiny test harness. CHECK records a failure and goes on; tests end with
 * tr_test_finish(), which prints "N passed, M failed" and returns the exit status. */
#ifndef TR_TEST_UTIL_H
#define TR_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

extern int tr_test_passed, tr_test_failed;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (cond) {                                                        \
            tr_test_passed++;                                              \
        } else {                                                           \
            tr_test_failed++;                                              \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                  \
            fputc('\n', stderr);                                           \
        }                                                                  \
    } while (0)

int tr_test_finish(const char *name);

/* Runs a statement and prints it with the seconds it took (the long end-to-end steps of a test). */
#define TIMED(call)                                                 \
    do {                                                            \
        double t0_ = tr_test_now();                                 \
        call;                                                       \
        printf("  %-60s %6.2f s\n", #call, tr_test_now() - t0_);    \
    } while (0)

/* NMSE = sum((a-b)^2) / sum(a^2) in double; returns INFINITY if a NaN or one-sided inf appears. */
double tr_nmse(const float *ref, const float *got, size_t n);
double tr_test_now(void); /* seconds on a monotonic clock, for the tests' timing lines */
double tr_max_abs_diff(const float *ref, const float *got, size_t n);

/* Path under ../shared or tests/golden, in a static buffer per call slot (0..3). */
const char *tr_shared(const char *rel);
const char *tr_golden(const char *rel);
int tr_file_exists(const char *path);

/* Writes data to path; a failure is a test failure. Returns 1 on success. */
int tr_write_file(const char *path, const void *data, size_t n);
/* Copies a file; a failure (either side) is a test failure. Returns 1 on success. */
int tr_copy_file(const char *from, const char *to);
/* Reads a whole file (NUL-terminated copy); returns NULL if unreadable. Caller frees. */
char *tr_read_file(const char *path, size_t *len);
/* Reads a float32 or int32 .npy (C order); returns data (caller frees) and the shape. */
void *tr_read_npy(const char *path, int *ndim, int64_t shape[4], char *kind /* 'f' or 'i' */);



/* ---- shared by the model-level tests (need the library) -------------------------------------- */
#include "ir.h"
#include "transit.h"

/* Whitespace-separated integers from a file (token ids, row lists); NULL if unreadable. */
int32_t *tr_test_read_ints(const char *path, int *n);

/* The backends every end-to-end test tries, cpu-ref first; usable[i] says which exist here (each
 * that does not is reported once, naming the test). */
#define TR_TEST_N_BACKENDS 5
extern const char *const tr_test_backends[TR_TEST_N_BACKENDS];
void tr_test_usable_backends(const char *test, int usable[TR_TEST_N_BACKENDS]);

/* A model under ../shared (rel) on a backend ("cpu", "cpu-ref", "vulkan", "cuda"), 2 CPU threads;
 * a failure is a test failure. */
tr_model *tr_test_load(const char *rel, const char *backend);
tr_model *tr_test_load_path(const char *path, const char *backend); /* the same, for any path */

/* The logits of every position of ids ([n, vocab], caller frees), prefilled in chunks of n_batch
 * (0: one batch) with the transition parameters tp (NULL: off). announce = 1 announces the prompt
 * length (tr_set_prompt_length); 0 leaves the schedule to follow the first tr_eval call, which is
 * the whole prompt only when n_batch is 0. NULL (and a test failure) on error. */
float *tr_test_eval_all(tr_model *m, const int32_t *ids, int n, int n_batch, const tr_transition_params *tp,
                        int announce);

/* The golden prompts of a model (tests/golden/logits/<name>.<prompt>.ids) evaluated on backend and
 * on the CPU reference, all logits compared within bound, prefilled in chunks of each of
 * batches[0..n_batches) (0: one batch). Returns the worst NMSE (a failure is a test failure). */
double tr_test_golden_logits(const char *model_rel, const char *name, const char *backend, const int *batches,
                             int n_batches, double bound);

/* The transition parameters of one case of tests/golden/transition/cases.json ("params": min_len,
 * blocks, alpha, beta, strategy), enabled. */
struct cJSON;
tr_transition_params tr_test_transition_params(const struct cJSON *params);

/* Smallest |p - t| / t over the attention probabilities of the transition rows of ap (and the
 * halved first weight), in double, from host copies of q {hd, H, T} and the key cache
 * {hd * Hkv, C}: the tie margin of design §6. Tests redraw inputs until it is >= 1e-5. */
double tr_test_transition_margin(const tr_tensor *q, const tr_tensor *k, const tr_attn_params *ap, const float *qd,
                                 const float *kd);
/* n greedy tokens after prompt, one tr_eval per token (the transition's parameters tp, NULL: off);
 * the logits of every step in *steps (n x V, caller frees). NULL (and a test failure) on error. */
int32_t *tr_test_greedy(tr_model *m, const int32_t *prompt, int n_prompt, int n, const tr_transition_params *tp,
                        float **steps);

/* A model quantized to type (tr_quantize into /tmp) on backend against cpu-ref: the logits of every
 * position of a 20-token prompt, prefilled whole and in chunks of 3 (decode's kernels), within bound,
 * and n_greedy greedy tokens the same, one at a time (a near tie, a logit gap below 1e-4, ends the
 * comparison legitimately). Returns the worst NMSE (a failure is a test failure). */
double tr_test_quantized_model(const char *src, const char *type, const char *backend, int n_greedy, double bound);

#endif
